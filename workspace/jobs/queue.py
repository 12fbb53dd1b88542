"""The RQ side of jobs (REDIS_URL set): one RQ job per job row, carrying JSON, with RQ's own `Retry` (the backoff
intervals drawn per job), success and failure callbacks (which write the row) and registries.

What RQ does: delivery, retries with their intervals (its scheduler: workers run `--with-scheduler`), timeouts,
the abandoned-job cleanup of its started registry (failure callback + Retry). What it cannot do, and we add:
- the row in PostgreSQL is the truth: the callbacks (`tasks.on_success`, `tasks.on_failure`) write it, every
  transition a compare-and-set, so a duplicate delivery never applies twice;
- a dead worker noticed within JOB_LEASE_SECONDS: RQ declares an attempt abandoned only when its started-registry
  entry expires (timeout + 60 s for a SimpleWorker); the reaper (`service.reap_lost_jobs`) expires that entry as
  soon as the row's lease lapses and lets RQ's cleanup do the rest (`abandon`);
- recovery of jobs Redis no longer holds (a restart without persistence) or whose scheduler died (`ensure_queued`).
"""

from __future__ import annotations

import contextlib
import re

import redis
from flask import Flask, current_app
from rq import Callback, Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from . import service, types

TASK = "workspace.jobs.tasks.run_job"
# RQ imports callbacks by name, as it does the task: no import of the worker side here.
ON_SUCCESS = Callback("workspace.jobs.tasks.on_success")
ON_FAILURE = Callback("workspace.jobs.tasks.on_failure")
# RQ job states in which the job will still run without our help.
_PENDING = {RQStatus.QUEUED, RQStatus.STARTED, RQStatus.DEFERRED, RQStatus.SCHEDULED}
# Nobody reads RQ's results: the row holds them. 0: a row's job that succeeded is deleted from Redis at once, in the
# worker's success transaction (worker.LeanMixin; RQ's own deletion reads first, several round trips). A failed one
# stays in RQ's failed registry for FAILURE_TTL, its traceback there for operators.
RESULT_TTL = 0
FAILURE_TTL = 24 * 3600


def rq_queue() -> Queue:
    """This app's RQ queue (JSON serializer; a connection of its own: RQ stores bytes, the shared client decodes)."""
    return current_app.extensions["jobs_dispatcher"].queue


def rq_job_id(job_id: int) -> str:
    """The RQ job of a row: `<queue>-<row id>` (queue names are per deployment, and per test)."""
    return current_app.extensions["jobs_dispatcher"].rq_id(job_id)


def row_id(rq_id: str) -> int | None:
    """The row an RQ job id belongs to, or None for a job that is not ours."""
    number = rq_id.rpartition("-")[2]
    return int(number) if number.isdigit() else None


class RQDispatcher:
    """Hands attempts to RQ workers."""

    def __init__(self, app: Flask) -> None:
        url = app.config.get("RQ_REDIS_URL") or app.config["REDIS_URL"]
        connection = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self.queue = Queue(app.config["RQ_QUEUE"], connection=connection, serializer=JSONSerializer)
        self.backoff_base = app.config["JOB_BACKOFF_BASE_SECONDS"]
        # RQ's registries join job and execution ids with ":", so a job id must not contain one.
        self.id_prefix = re.sub(r"[^A-Za-z0-9_-]", "_", self.queue.name)

    def rq_id(self, job_id: int) -> str:
        return f"{self.id_prefix}-{job_id}"

    def enqueue(self, job_id: int, job_type: str, next_attempt: int, max_attempts: int, *,
                replace: bool = False) -> None:
        """Queue the row's job for attempt `next_attempt`, RQ retrying it up to `max_attempts` in all."""
        rq_id = self.rq_id(job_id)
        if replace:  # a previous RQ job of this row (failed, lost, finished) must not linger in its registries
            self._delete(rq_id)
        retries = max_attempts - next_attempt
        # RQ picks interval [len - retries_left]: the full list keeps attempt n's wait at index n-1.
        retry = Retry(max=retries, interval=service.retry_intervals(max_attempts, self.backoff_base)) \
            if retries > 0 else None
        job_type_ = types.JOB_TYPES.get(job_type)
        self.queue.enqueue(TASK, job_id, job_id=rq_id, retry=retry, on_success=ON_SUCCESS, on_failure=ON_FAILURE,
                           result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL,
                           job_timeout=job_type_.timeout if job_type_ else 60,
                           description=f"{job_type} job {job_id}")

    def abandon(self, job_ids: list[int]) -> None:
        """Expire these jobs' entries in RQ's started registry now, and run RQ's cleanup: it calls the failure
        callback (AbandonedJobError) and retries or fails each job as it would after its own, later, timeout."""
        registry = StartedJobRegistry(queue=self.queue)
        wanted = {self.rq_id(job_id) for job_id in job_ids}
        expired = {entry: 0 for entry in self.queue.connection.zrange(registry.key, 0, -1)
                   if registry.parse_job_id(entry) in wanted}
        if expired:
            self.queue.connection.zadd(registry.key, expired, xx=True)
            registry.cleanup()

    def ensure_queued(self, job_id: int, job_type: str, next_attempt: int, max_attempts: int) -> bool:
        """Queue an overdue job again unless RQ still holds it; an overdue scheduled retry (its scheduler's worker
        died; the lock outlives it) is moved to the queue."""
        rq_id = self.rq_id(job_id)
        try:
            rq_job = RQJob.fetch(rq_id, connection=self.queue.connection, serializer=JSONSerializer)
            status = rq_job.get_status()
        except NoSuchJobError:
            rq_job, status = None, None
        if status == RQStatus.SCHEDULED and rq_job is not None:
            self.queue.scheduled_job_registry.remove(rq_job)
            self.queue.enqueue_job(rq_job)
            return True
        if status in _PENDING:
            return False
        self.enqueue(job_id, job_type, next_attempt, max_attempts, replace=True)
        return True

    def _delete(self, rq_id: str) -> None:
        with contextlib.suppress(NoSuchJobError):
            RQJob.fetch(rq_id, connection=self.queue.connection, serializer=JSONSerializer).delete()
