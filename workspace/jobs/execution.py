"""Running one attempt of one job, and recording how it ended: the same code under RQ and in the embedded runner.

`perform` claims the row (compare-and-set), runs the type's handler and returns `{"attempt", "result"}`; when the
handler raises, it raises `AttemptFailed` (carrying the attempt number) for the runner's retry logic. `succeeded`
and `failed` record the outcome on the row; under RQ they are the job's success and failure callbacks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..extensions import db
from . import service, types
from .attempt import Attempt, AttemptLost, JobFailure

log = logging.getLogger(__name__)

INTERNAL_ERROR = "The job failed because of an internal error."


class AttemptFailed(RuntimeError):
    """The handler of attempt `attempt` raised (the original exception is the `__cause__`)."""

    def __init__(self, job_id: int, attempt: int) -> None:
        super().__init__(f"job {job_id} attempt {attempt} failed")
        self.attempt = attempt


def perform(job_id: int, sleep: Callable[[float], None]) -> dict[str, Any]:
    """Claim and run the job's next attempt. Returns {"attempt", "result"}, {"skipped": True} when the row was not
    claimable (a duplicate delivery, or the job is done), or {"attempt", "lost": True} when the row was taken from
    this attempt while it ran; raises AttemptFailed when the handler failed."""
    job = service.claim(job_id)
    if job is None:
        log.info("job %s: not claimable (duplicate delivery or already done); skipped", job_id)
        return {"skipped": True}
    number = job.attempts

    def heartbeat(progress: dict | None = None) -> None:
        if not service.renew_lease(job_id, number, progress):
            raise AttemptLost(f"job {job_id} attempt {number} was taken over")

    attempt = Attempt(job_id=job_id, number=number, project_id=job.project_id, payload=dict(job.payload or {}),
                      sleep=sleep, heartbeat=heartbeat,
                      step=max(0.1, service.lease().total_seconds() / 3))
    try:
        result = types.get(job.type).run(attempt)
    except AttemptLost:
        db.session.rollback()
        log.warning("job %s attempt %s: taken over while running; its outcome is dropped", job_id, number)
        return {"attempt": number, "lost": True}
    except Exception as exc:
        db.session.rollback()
        raise AttemptFailed(job_id, number) from exc
    return {"attempt": number, "result": result}


def succeeded(job_id: int, outcome: dict[str, Any]) -> None:
    """Record what `perform` returned (nothing to record for a skipped or lost attempt)."""
    if "result" in outcome:
        service.complete(job_id, outcome["attempt"], outcome["result"])


def failed(job_id: int, error: BaseException, retry_at: datetime | None, *, retries_left: int = 0,
           message: str | None = None) -> None:
    """Record a failed attempt: retrying, due at `retry_at`, or failed when None. Members read `message` (or
    the failure's own message when it is a JobFailure, else a generic one); the log keeps the exception."""
    attempt = error.attempt if isinstance(error, AttemptFailed) else None
    cause = error.__cause__ if isinstance(error, AttemptFailed) and error.__cause__ is not None else error
    if message is None:
        message = str(cause) if isinstance(cause, JobFailure) else INTERNAL_ERROR
    log.warning("job %s attempt %s failed (%s): %s", job_id, attempt if attempt is not None else "?",
                "retrying" if retry_at is not None else "no attempts left", message,
                exc_info=None if isinstance(cause, JobFailure) else (type(cause), cause, cause.__traceback__))
    service.fail_attempt(job_id, attempt, message, retry_at, retries_left=retries_left)
