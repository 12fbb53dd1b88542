"""Running one attempt of one job, the same way in an RQ worker and in the embedded runner.

claim (CAS) → the type's handler → complete or fail_attempt (CAS). An attempt that loses the claim (a duplicate
delivery, or a job already finished) does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..extensions import db
from . import service, types

log = logging.getLogger(__name__)


class AttemptLost(RuntimeError):
    """The row no longer belongs to this attempt (the reaper gave it to another): stop working on it."""


def execute(job_id: int, attempt: int, sleep: Callable[[float], None]) -> str:
    """Run `attempt` of the job; returns what happened: skipped, succeeded, retrying, failed or lost."""
    job = service.claim(job_id, attempt)
    if job is None:
        log.info("job %s attempt %s: not claimable (duplicate delivery or already done); skipped", job_id, attempt)
        return "skipped"

    def heartbeat(progress: dict | None = None) -> None:
        if not service.renew_lease(job_id, attempt, progress):
            raise AttemptLost(f"job {job_id} attempt {attempt} was taken over")

    run = types.Attempt(job_id=job_id, number=attempt, project_id=job.project_id, payload=dict(job.payload or {}),
                        sleep=sleep, heartbeat=heartbeat)
    try:
        result = types.get(job.type).run(run)
    except AttemptLost:
        db.session.rollback()
        return "lost"
    except Exception as exc:
        db.session.rollback()
        log.info("job %s attempt %s failed: %s", job_id, attempt, exc)
        failed = service.fail_attempt(job_id, attempt, f"{type(exc).__name__}: {exc}")
        return failed.status.value if failed is not None else "lost"
    done = service.complete(job_id, attempt, result, run.artifact)
    return "succeeded" if done is not None else "lost"
