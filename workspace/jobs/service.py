"""Jobs: submission (idempotent, within the user's quota), reads, and every state change of a job's row, each a
compare-and-set.

The row is the source of truth: queued → running → (retrying → running)* → succeeded | failed. A transition only
applies when the row is still in the state (and at the attempt) its caller saw, so a re-delivered or duplicated
attempt never applies twice. Every applied transition is announced as `events.job_updated`.

Where an attempt runs is not this module's business: it hands attempts to the app's dispatcher
(`app.extensions["jobs_dispatcher"]`: RQ in `queue.py`, or the embedded runner in `runner.py`), installed when the
jobs blueprint is registered.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from datetime import datetime, timedelta
from typing import Any, Protocol

import redis
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from .. import db_pool, events
from ..errors import ApiError, Conflict, NotFound, ServiceUnavailable
from ..extensions import db
from ..models import Job, JobArtifact, JobStatus, User, utcnow
from ..policy import Action, authorize
from . import export, types

log = logging.getLogger(__name__)

WAITING = (JobStatus.QUEUED, JobStatus.RETRYING)
IN_FLIGHT = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING)
IDEMPOTENCY_TTL = timedelta(hours=24)
REAP_BATCH = 100
LOST_ERROR = "The worker running this attempt stopped before finishing it (worker lost)."


class Dispatcher(Protocol):
    """Runs attempts of jobs: RQ (`queue.RQDispatcher`) or in-process (`runner.EmbeddedDispatcher`)."""

    def enqueue(self, job_id: int, job_type: str, next_attempt: int, max_attempts: int, *,
                replace: bool = False) -> None:
        """Run attempt `next_attempt` now (and the later ones, with backoff, if it fails). Raises RedisError."""

    def abandon(self, job_ids: list[int]) -> None:
        """These jobs' running attempts are lost: fail them (and retry) the way the runner does for a dead worker."""

    def ensure_queued(self, job_id: int, job_type: str, next_attempt: int, max_attempts: int) -> bool:
        """Queue the job's next attempt again unless the runner still holds it; True when it was queued again."""


def dispatcher() -> Dispatcher:
    return current_app.extensions["jobs_dispatcher"]


def backoff_delay(failed_attempt: int, base: float, rng: random.Random | None = None) -> float:
    """Seconds before the attempt after `failed_attempt`: base·2^(n-1), with "equal jitter" (half fixed, half random),
    so retries of jobs that failed together spread out but never come sooner than half the nominal delay."""
    nominal = base * 2 ** (failed_attempt - 1)
    return nominal / 2 + (rng or random).uniform(0, nominal / 2)


def retry_intervals(max_attempts: int, base: float) -> list[int]:
    """The waits before attempts 2..max_attempts, drawn once per job, in whole seconds for RQ's Retry. RQ's scheduler
    truncates a retry's due time to the second (it may come up to 1 s early), so each wait is rounded up and given
    one more second: a retry never comes sooner than its backoff, and at most 2 s later."""
    return [math.ceil(backoff_delay(n, base)) + 1 for n in range(1, max_attempts)]


def request_hash(project_id: int, job_type: str, payload: Any) -> str:
    body = json.dumps({"project_id": project_id, "type": job_type, "payload": payload},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def submit(user_id: int, project_id: int, job_type: str, payload: Any,
           idempotency_key: str | None = None) -> tuple[Job, bool]:
    """Create and dispatch a job; returns (job, created). With a key already used by this user in the last 24 h,
    returns the original job (created False) or raises Conflict when the request differs from the original.
    Raises a 429 `job_quota_exceeded` when the user already has JOB_MAX_IN_FLIGHT_PER_USER unfinished jobs."""
    authorize(project_id, user_id, Action.EDIT)
    clean_payload = types.validate_payload(job_type, payload)
    fingerprint = request_hash(project_id, job_type, payload)
    now = utcnow()
    if idempotency_key:
        existing = _by_key(user_id, idempotency_key, now)
        if existing is not None:
            return _replay(existing, fingerprint), False
        # An expired key is free again: detach it from its old job so the unique constraint lets the new one in.
        db.session.execute(sa.update(Job).where(
            Job.user_id == user_id, Job.idempotency_key == idempotency_key, Job.created_at < now - IDEMPOTENCY_TTL,
        ).values(idempotency_key=None, request_hash=None))
    _check_quota(user_id)
    job = Job(project_id=project_id, user_id=user_id, type=job_type, payload=clean_payload, status=JobStatus.QUEUED,
              attempts=0, max_attempts=current_app.config["JOB_MAX_ATTEMPTS"], idempotency_key=idempotency_key,
              request_hash=fingerprint if idempotency_key else None, created_at=now, next_attempt_at=now)
    db.session.add(job)
    try:
        db.session.flush()
        db.session.expunge(job)  # keeps its loaded state through the commit (no reload to read it back)
        db.session.commit()
    except IntegrityError:
        # A concurrent request with the same key won the insert: answer as its replay.
        db.session.rollback()
        existing = _by_key(user_id, idempotency_key, now) if idempotency_key else None
        if existing is None:
            raise
        return _replay(existing, fingerprint), False
    try:
        dispatcher().enqueue(job.id, job.type, 1, job.max_attempts)
    except redis.RedisError as exc:
        # Refuse rather than accept a job nothing will run: no row is left behind, so the client may retry,
        # with the same Idempotency-Key too.
        log.warning("job queue unavailable, refusing job %s: %s", job.id, exc)
        db.session.execute(sa.delete(Job).where(Job.id == job.id))
        db.session.commit()
        raise ServiceUnavailable("The job queue is unavailable; try again shortly.", code="queue_unavailable") from None
    announce(job)
    return job, True


def _check_quota(user_id: int) -> None:
    """At most JOB_MAX_IN_FLIGHT_PER_USER queued, running or retrying jobs per user (0: no limit). The user's row is
    locked until the job's insert commits, so concurrent submissions cannot both take the last slot."""
    limit = current_app.config["JOB_MAX_IN_FLIGHT_PER_USER"]
    if not limit:
        return
    db.session.execute(sa.select(User.id).where(User.id == user_id).with_for_update())
    in_flight = db.session.scalar(sa.select(sa.func.count()).select_from(Job).where(
        Job.user_id == user_id, Job.status.in_(IN_FLIGHT)))
    if in_flight >= limit:
        db.session.rollback()
        raise ApiError(f"You already have {in_flight} unfinished jobs (the limit is {limit}); "
                       "wait for some to finish.", code="job_quota_exceeded", status=429,
                       details={"limit": limit, "in_flight": in_flight}, headers={"Retry-After": "5"})


def _by_key(user_id: int, key: str, now: datetime) -> Job | None:
    return db.session.scalar(sa.select(Job).where(
        Job.user_id == user_id, Job.idempotency_key == key, Job.created_at >= now - IDEMPOTENCY_TTL))


def _replay(job: Job, fingerprint: str) -> Job:
    if job.request_hash != fingerprint:
        raise Conflict("This Idempotency-Key was already used with a different request.",
                       code="idempotency_key_reused", details={"job_id": job.id})
    return job


def get_for_member(job_id: int, user_id: int) -> Job:
    """The job if the user is a member of its project; NotFound otherwise (a job's existence is not revealed)."""
    job = db.session.get(Job, job_id)
    if job is None:
        raise NotFound("Job not found.", code="job_not_found")
    try:
        authorize(job.project_id, user_id, Action.READ)
    except NotFound:
        raise NotFound("Job not found.", code="job_not_found") from None
    return job


def artifact_for_member(job_id: int, user_id: int) -> JobArtifact:
    """The artifact of a succeeded job (not one a later-lost attempt left behind); NotFound otherwise."""
    job = get_for_member(job_id, user_id)
    artifact = db.session.get(JobArtifact, job_id) if job.status == JobStatus.SUCCEEDED else None
    if artifact is None:
        raise NotFound("This job has no artifact.", code="artifact_not_found")
    return artifact


def artifact_chunks(job_id: int):
    """The artifact's bytes in order, one chunk (one query) at a time."""
    return export.artifact_chunks(job_id)


def list_for_project(project_id: int, user_id: int, page: int, per_page: int) -> dict:
    """A page of the project's jobs, newest first."""
    authorize(project_id, user_id, Action.READ)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Job).where(Job.project_id == project_id))
    items = db.session.scalars(sa.select(Job).where(Job.project_id == project_id)
                               .order_by(Job.created_at.desc(), Job.id.desc())
                               .limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": items, "page": page, "per_page": per_page, "total": total}


# --- state transitions (each a compare-and-set; each applied one is announced) ---

def _apply(job_id: int, conditions: list, values: dict) -> Job | None:
    """UPDATE the row if it still matches `conditions`; the fresh row, announced, or None when it did not match."""
    job = _update(job_id, conditions, values)
    if job is not None:
        announce(job)
    return job


def _update(job_id: int, conditions: list, values: dict) -> Job | None:
    """The compare-and-set itself: one UPDATE ... RETURNING; the fresh row (detached) or None."""
    values.setdefault("updated_at", utcnow())
    statement = sa.update(Job).where(Job.id == job_id, *conditions).values(**values)
    if db.engine.dialect.name == "postgresql":
        # One statement is atomic on its own: in autocommit it is one round trip, where a transaction adds BEGIN
        # and COMMIT (the hot path of every job runs through here). Not on SQLite: a second connection writing
        # while the session's transaction reads would wait on SQLite's database lock.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            row = connection.execute(statement.returning(*Job.__table__.columns)).one_or_none()
        return Job(**row._mapping) if row is not None else None
    job = db.session.scalars(statement.returning(Job),
                             execution_options={"synchronize_session": False, "populate_existing": True}
                             ).one_or_none()
    if job is None:
        db.session.rollback()
        return None
    db.session.expunge(job)  # detached before the commit, so reading it afterwards does not reload it
    db.session.commit()
    return job


# The two transitions every attempt makes, as plain SQL on PostgreSQL (see `_update_sql`): the compare-and-set
# `_update` would run for claim() and complete(). Only the model's own table and column names are interpolated.
_RETURNING = ", ".join(column.name for column in Job.__table__.columns)


def _cas_sql(assignments: str, conditions: str) -> str:
    return f"UPDATE {Job.__tablename__} SET {assignments} WHERE {conditions} RETURNING {_RETURNING}"  # noqa: S608


# The claim commits without waiting for its WAL flush (synchronous_commit off for its own transaction only: the
# two statements go as one query, which PostgreSQL runs as one transaction): the job was stored durably when it was
# submitted, and the completion, a synchronous commit, flushes the claim's WAL with its own. A PostgreSQL crash can
# lose only a claim whose attempt has not ended yet: the row reads queued (or retrying) again, that attempt's
# completion no longer matches, and the reaper queues the job again (docs/jobs.md, "Durability of a claim").
_CLAIM_SQL = "SET LOCAL synchronous_commit = off; " + _cas_sql(
    "status = %(running)s, attempts = attempts + 1, started_at = %(now)s, lease_expires_at = %(lease)s, "
    "updated_at = %(now)s",
    "id = %(job_id)s AND status IN %(waiting)s")
_COMPLETE_SQL = _cas_sql("status = %(succeeded)s, result = %(result)s, finished_at = %(now)s, "
                         "lease_expires_at = NULL, updated_at = %(now)s",
                         "id = %(job_id)s AND status = %(running)s AND attempts = %(attempt)s")
_result_processors: dict = {}


def _plain_sql() -> bool:
    return db.engine.dialect.name == "postgresql"


def _update_sql(sql: str, params: dict) -> Job | None:
    """A compare-and-set as one plain SQL statement in autocommit, on the worker's held connection (installed by
    `tasks.worker_app`) or a pooled one: SQLAlchemy's statement building, compilation, checkout/checkin and result
    layer cost several times the round trip on the path every job takes. The fresh row as a detached Job, or None."""
    held = current_app.extensions.get("jobs_connection")
    row = held.fetchone(sql, params) if held is not None else db_pool.fetchone_autocommit(db.engine, sql, params)
    if row is None:
        return None
    dialect = db.engine.dialect
    processors = _result_processors.get(dialect)
    if processors is None:  # each column type's own conversion (enum, UTC datetimes, JSON), as SQLAlchemy reads it
        processors = _result_processors[dialect] = [
            column.type._cached_result_processor(dialect, None) for column in Job.__table__.columns]
    return Job(**{column.name: processor(value) if processor else value
                  for column, processor, value in zip(Job.__table__.columns, processors, row, strict=True)})


def announce(job: Job) -> None:
    """Announce a committed change of the job's row (realtime sends JOB_UPDATE, metrics record finished attempts).

    In a worker that installed an announcer (`worker.Announcer`) it is handed to it: announced in order from a thread
    of its own, while the job loop goes on."""
    announcer = current_app.extensions.get("jobs_announcer")
    if announcer is not None and announcer.take(job):
        return
    events.announce(events.job_updated, job=job)


def lease() -> timedelta:
    return timedelta(seconds=current_app.config["JOB_LEASE_SECONDS"])


def claim(job_id: int) -> Job | None:
    """queued|retrying → running as the next attempt; None when another delivery got there first (or it is done)."""
    now = utcnow()
    if _plain_sql():
        job = _update_sql(_CLAIM_SQL, {"job_id": job_id, "running": JobStatus.RUNNING.value, "now": now,
                                       "waiting": tuple(status.value for status in WAITING), "lease": now + lease()})
        if job is not None:
            announce(job)
        return job
    return _apply(job_id, [Job.status.in_(WAITING)], {
        "status": JobStatus.RUNNING, "attempts": Job.attempts + 1, "started_at": now,
        "lease_expires_at": now + lease(), "updated_at": now})


def renew_lease(job_id: int, attempt: int, progress: dict | None = None) -> bool:
    """Extend a running attempt's lease (and record progress, announced); False when the attempt is no longer ours."""
    now = utcnow()
    values: dict[str, Any] = {"lease_expires_at": now + lease(), "updated_at": now}
    conditions = [Job.status == JobStatus.RUNNING, Job.attempts == attempt]
    if progress is None:
        return _update(job_id, conditions, values) is not None
    values["progress"] = progress
    return _apply(job_id, conditions, values) is not None


def complete(job_id: int, attempt: int, result: Any) -> Job | None:
    """running → succeeded, storing the result."""
    now = utcnow()
    if _plain_sql():
        job = _update_sql(_COMPLETE_SQL, {"job_id": job_id, "attempt": attempt, "now": now,
                                          "running": JobStatus.RUNNING.value, "succeeded": JobStatus.SUCCEEDED.value,
                                          "result": json.dumps(result)})
        if job is not None:
            announce(job)
        return job
    return _apply(job_id, [Job.status == JobStatus.RUNNING, Job.attempts == attempt], {
        "status": JobStatus.SUCCEEDED, "result": result, "finished_at": now, "lease_expires_at": None,
        "updated_at": now})


def fail_attempt(job_id: int, attempt: int | None, error: str, retry_at: datetime | None, *,
                 retries_left: int = 0, lost: bool = False, now: datetime | None = None) -> Job | None:
    """running → retrying (the next attempt due at `retry_at`) or, with `retry_at` None, → failed.

    `attempt` None: the attempt the runner's retry count implies (attempts == max_attempts - retries_left), for a
    failure reported without it (RQ's abandoned-job cleanup). `lost`: only while the attempt's lease is expired.
    """
    now = now or utcnow()
    conditions = [Job.status == JobStatus.RUNNING,
                  Job.attempts == (attempt if attempt is not None else Job.max_attempts - retries_left)]
    if lost:
        conditions.append(Job.lease_expires_at < now)
    values: dict[str, Any] = {"error": error[:4000], "lease_expires_at": None, "updated_at": now}
    if retry_at is not None:
        values.update(status=JobStatus.RETRYING, next_attempt_at=retry_at)
    else:
        values.update(status=JobStatus.FAILED, finished_at=now)
    return _apply(job_id, conditions, values)


# --- recovery and maintenance (workers' maintenance loop, the ops CLI) ---

def reap_lost_jobs(now: datetime | None = None) -> int:
    """Retry (or fail) running jobs whose worker died, and queue again overdue waiting jobs the runner lost.

    A job's lease (renewed by its attempt) says within JOB_LEASE_SECONDS that its worker is gone; RQ alone would
    notice only when the attempt's entry in its started registry expires (the job's timeout + 60 s for a
    SimpleWorker). Lost attempts go through the runner's own abandoned-job handling first (RQ: failure callback and
    Retry); any the runner no longer knows (Redis lost it, a callback failed) are failed and retried here.
    Returns how many jobs it acted on. Safe in every worker at once: each step is a compare-and-set.
    """
    now = now or utcnow()
    lost = db.session.execute(sa.select(Job.id, Job.type, Job.attempts, Job.max_attempts).where(
        Job.status == JobStatus.RUNNING, Job.lease_expires_at < now).limit(REAP_BATCH)).all()
    overdue = db.session.execute(sa.select(Job.id, Job.type, Job.attempts, Job.max_attempts).where(
        Job.status.in_(WAITING), Job.next_attempt_at < now - lease()).limit(REAP_BATCH)).all()
    db.session.commit()
    acted = 0
    if lost:
        try:
            dispatcher().abandon([row.id for row in lost])
        except redis.RedisError as exc:
            log.warning("reaper could not hand lost jobs to RQ: %s", exc)
        for job_id, job_type, attempt, max_attempts in lost:
            acted += 1
            retry = attempt < max_attempts
            job = fail_attempt(job_id, attempt, LOST_ERROR, now if retry else None, lost=True, now=now)
            if job is None:
                continue  # the runner handled it (or the attempt finished meanwhile)
            log.warning("job %s: attempt %s lost with its worker; %s", job_id, attempt,
                        "retrying" if retry else "failed")
            if retry:
                _redispatch(job_id, job_type, attempt + 1, max_attempts)
    for job_id, job_type, attempts, max_attempts in overdue:
        try:
            if dispatcher().ensure_queued(job_id, job_type, attempts + 1, max_attempts):
                log.warning("job %s: attempt %s was overdue and not queued; queued again", job_id, attempts + 1)
                acted += 1
        except redis.RedisError as exc:
            log.warning("reaper could not check job %s: %s", job_id, exc)
            break
    return acted


def _redispatch(job_id: int, job_type: str, next_attempt: int, max_attempts: int) -> None:
    try:
        dispatcher().enqueue(job_id, job_type, next_attempt, max_attempts, replace=True)
    except redis.RedisError as exc:
        # The row says queued/retrying with a due time; the reaper queues it once it is overdue.
        log.warning("could not queue job %s again (the reaper will): %s", job_id, exc)


def requeue_failed_jobs(project_id: int | None = None, since: datetime | None = None,
                        job_ids: list[int] | None = None) -> int:
    """Give failed jobs a fresh set of attempts (failed → queued) and dispatch them; returns how many."""
    query = sa.select(Job.id, Job.type).where(Job.status == JobStatus.FAILED)
    if project_id is not None:
        query = query.where(Job.project_id == project_id)
    if since is not None:
        query = query.where(Job.finished_at >= since)
    if job_ids is not None:
        query = query.where(Job.id.in_(job_ids))
    count = 0
    for job_id, job_type in db.session.execute(query.order_by(Job.id)).all():
        now = utcnow()
        job = _apply(job_id, [Job.status == JobStatus.FAILED], {
            "status": JobStatus.QUEUED, "attempts": 0, "finished_at": None, "next_attempt_at": now,
            "updated_at": now})
        if job is not None:
            count += 1
            _redispatch(job_id, job_type, 1, job.max_attempts)
    return count


def purge_expired_idempotency_keys(now: datetime | None = None) -> int:
    """Forget Idempotency-Keys older than 24 h (their jobs stay); returns how many were cleared."""
    cutoff = (now or utcnow()) - IDEMPOTENCY_TTL
    result = db.session.execute(sa.update(Job).where(Job.idempotency_key.is_not(None), Job.created_at < cutoff)
                                .values(idempotency_key=None, request_hash=None)
                                .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount
