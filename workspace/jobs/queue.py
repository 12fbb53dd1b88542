"""Handing a job's next attempt to whatever runs it: RQ (REDIS_URL set) or the in-process runner (embedded).

Each attempt is its own RQ job with a deterministic id (queue, row, attempt), so a re-dispatch of the same attempt
is recognisable and a duplicate delivery is harmless (the attempt's claim is a compare-and-set on the row).
Retries are scheduled with `enqueue_at`, which needs a worker started with the scheduler.
"""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime

import redis
from flask import current_app
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.registry import ScheduledJobRegistry

from ..extensions import redis_store
from . import types

TASK = "workspace.jobs.tasks.run_job"
# RQ job states in which the attempt will still run without our help.
_PENDING = {RQStatus.QUEUED, RQStatus.STARTED, RQStatus.DEFERRED}


def backoff_delay(failed_attempt: int, base: float, rng: random.Random | None = None) -> float:
    """Seconds before the attempt after `failed_attempt`: base·2^(n-1), with "equal jitter" (half fixed, half random),
    so retries of jobs that failed together spread out but never come sooner than half the nominal delay."""
    nominal = base * 2 ** (failed_attempt - 1)
    return nominal / 2 + (rng or random).uniform(0, nominal / 2)


def rq_queue() -> Queue:
    """This app's RQ queue, on a connection of its own (RQ stores bytes; the shared client decodes to str)."""
    ext = current_app.extensions.get("jobs_queue")
    if ext is None:
        url = current_app.config.get("RQ_REDIS_URL") or current_app.config["REDIS_URL"]
        connection = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        ext = current_app.extensions["jobs_queue"] = Queue(current_app.config["RQ_QUEUE"], connection=connection)
    return ext


def rq_job_id(job_id: int, attempt: int) -> str:
    queue_name = re.sub(r"[^A-Za-z0-9_-]", "_", current_app.config["RQ_QUEUE"])
    return f"{queue_name}-{job_id}-{attempt}"


def dispatch(job_id: int, job_type: str, attempt: int, delay: float = 0.0) -> None:
    """Run `attempt` of the job after `delay` seconds. Raises redis.RedisError when RQ cannot take it."""
    if redis_store.embedded:
        from . import runner

        runner.dispatch(current_app._get_current_object(), job_id, attempt, delay)
        return
    queue = rq_queue()
    # A short result_ttl, not 0: RQ deletes a 0-TTL job from every registry, many round trips per job; with a TTL
    # the key just expires. Nobody reads RQ results: the row holds the result.
    options = {"job_id": rq_job_id(job_id, attempt), "result_ttl": 60, "failure_ttl": 24 * 3600,
               "job_timeout": types.JOB_TYPES[job_type].timeout if job_type in types.JOB_TYPES else 60,
               "description": f"{job_type} job {job_id}, attempt {attempt}"}
    if delay > 0:
        # RQ's scheduler keeps whole seconds (truncated); rounding up means a retry never comes early.
        due = datetime.fromtimestamp(math.ceil(datetime.now(UTC).timestamp() + delay), UTC)
        queue.enqueue_at(due, TASK, job_id, attempt, **options)
    else:
        queue.enqueue(TASK, job_id, attempt, **options)


def ensure_dispatched(job_id: int, job_type: str, attempt: int) -> bool:
    """Re-dispatch an overdue attempt unless RQ still holds it; True when it was dispatched again.

    Covers a retry whose enqueue failed, a scheduled retry stuck because the scheduler's worker died (its lock
    outlives it by a minute), and a queue emptied by a Redis restart.
    """
    if redis_store.embedded:
        dispatch(job_id, job_type, attempt)
        return True
    queue = rq_queue()
    rq_id = rq_job_id(job_id, attempt)
    try:
        status = RQJob.fetch(rq_id, connection=queue.connection).get_status()
    except NoSuchJobError:
        status = None
    if status in _PENDING:
        return False
    if status == RQStatus.SCHEDULED:
        ScheduledJobRegistry(queue=queue).remove(rq_id)
    dispatch(job_id, job_type, attempt)
    return True
