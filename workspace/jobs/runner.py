"""Embedded mode (no REDIS_URL): attempts run as background tasks of the one process, with the same states,
retries, backoff and events as under RQ. Uses the Socket.IO server's task and sleep functions, so it works under
threading, eventlet and gevent alike."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask

from ..extensions import socketio
from ..models import utcnow
from . import execution, service

log = logging.getLogger(__name__)


class EmbeddedDispatcher:
    """The dispatcher of an app without Redis: each job runs its attempts in one background task."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def enqueue(self, job_id: int, job_type: str, next_attempt: int, max_attempts: int, *,
                replace: bool = False) -> None:
        base = self.app.config["JOB_BACKOFF_BASE_SECONDS"]
        intervals = [service.backoff_delay(n, base) for n in range(1, max_attempts)]
        socketio.start_background_task(self._run, job_id, max_attempts, intervals)

    def abandon(self, job_ids: list[int]) -> None:
        """Nothing but the row knows an embedded attempt: the reaper's own handling is all there is."""

    def ensure_queued(self, job_id: int, job_type: str, next_attempt: int, max_attempts: int) -> bool:
        self.enqueue(job_id, job_type, next_attempt, max_attempts)
        return True

    def _run(self, job_id: int, max_attempts: int, intervals: list[float]) -> None:
        try:
            with self.app.app_context():
                while True:
                    try:
                        outcome = execution.perform(job_id, sleep=socketio.sleep)
                    except execution.AttemptFailed as exc:
                        if exc.attempt >= max_attempts:
                            execution.failed(job_id, exc, None)
                            return
                        delay = intervals[exc.attempt - 1]
                        execution.failed(job_id, exc, utcnow() + timedelta(seconds=delay))
                        socketio.sleep(delay)
                        continue
                    execution.succeeded(job_id, outcome)
                    return
        except Exception:  # a background task has no caller to raise to
            log.exception("embedded job %s crashed", job_id)
