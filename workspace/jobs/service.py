"""Jobs: submission (idempotent), reads, and every state change of a job's row, each a compare-and-set.

The row is the source of truth: queued → running → (retrying → running)* → succeeded | failed. A transition only
applies when the row is still in the state (and at the attempt) its caller saw, so a re-delivered or duplicated
attempt never applies twice. Every applied transition is announced as `events.job_updated`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import redis
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from .. import events
from ..errors import Conflict, NotFound, ServiceUnavailable
from ..extensions import db
from ..models import Job, JobArtifact, JobStatus, utcnow
from ..policy import Action, authorize
from . import queue, types

log = logging.getLogger(__name__)

WAITING = (JobStatus.QUEUED, JobStatus.RETRYING)
IDEMPOTENCY_TTL = timedelta(hours=24)
REAP_BATCH = 100


def request_hash(project_id: int, job_type: str, payload: Any) -> str:
    body = json.dumps({"project_id": project_id, "type": job_type, "payload": payload},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def submit(user_id: int, project_id: int, job_type: str, payload: Any,
           idempotency_key: str | None = None) -> tuple[Job, bool]:
    """Create and dispatch a job; returns (job, created). With a key already used by this user in the last 24 h,
    returns the original job (created False) or raises Conflict when the request differs from the original."""
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
        queue.dispatch(job.id, job.type, 1)
    except redis.RedisError as exc:
        # Refuse rather than accept a job nothing will run: no row is left behind, so the client may retry,
        # with the same Idempotency-Key too.
        log.warning("job queue unavailable, refusing job %s: %s", job.id, exc)
        db.session.execute(sa.delete(Job).where(Job.id == job.id))
        db.session.commit()
        raise ServiceUnavailable("The job queue is unavailable; try again shortly.", code="queue_unavailable",
                                 headers={"Retry-After": "5"}) from None
    announce(job)
    return job, True


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
    get_for_member(job_id, user_id)
    artifact = db.session.get(JobArtifact, job_id)
    if artifact is None:
        raise NotFound("This job has no artifact.", code="artifact_not_found")
    return artifact


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
    values.setdefault("updated_at", utcnow())
    # One round trip: UPDATE ... RETURNING gives the fresh row (the hot path of every job runs through here).
    job = db.session.scalars(sa.update(Job).where(Job.id == job_id, *conditions).values(**values).returning(Job),
                             execution_options={"synchronize_session": False, "populate_existing": True}
                             ).one_or_none()
    if job is None:
        db.session.rollback()
        return None
    # Detached before the commit, so reading it afterwards does not reload it.
    db.session.expunge(job)
    db.session.commit()
    announce(job)
    return job


def announce(job: Job) -> None:
    """Announce a committed change of the job's row (realtime sends JOB_UPDATE, metrics record finished attempts)."""
    events.announce(events.job_updated, job=job)


def claim(job_id: int, attempt: int) -> Job | None:
    """queued|retrying → running, as attempt number `attempt`; None when another delivery got there first."""
    now = utcnow()
    return _apply(job_id, [Job.status.in_(WAITING), Job.attempts == attempt - 1], {
        "status": JobStatus.RUNNING, "attempts": attempt, "started_at": now, "lease_expires_at": now + _lease(),
        "updated_at": now})


def renew_lease(job_id: int, attempt: int, progress: dict | None = None) -> bool:
    """Extend a running attempt's lease (and record progress, announced); False when the attempt is no longer ours."""
    now = utcnow()
    values: dict[str, Any] = {"lease_expires_at": now + _lease(), "updated_at": now}
    conditions = [Job.status == JobStatus.RUNNING, Job.attempts == attempt]
    if progress is None:
        result = db.session.execute(sa.update(Job).where(Job.id == job_id, *conditions).values(**values)
                                    .execution_options(synchronize_session=False))
        db.session.commit()
        return result.rowcount == 1
    values["progress"] = progress
    return _apply(job_id, conditions, values) is not None


def complete(job_id: int, attempt: int, result: Any, artifact: JobArtifact | None = None) -> Job | None:
    """running → succeeded, storing the result (and artifact) in the same transaction."""
    if artifact is not None:
        db.session.merge(artifact)
    now = utcnow()
    return _apply(job_id, [Job.status == JobStatus.RUNNING, Job.attempts == attempt], {
        "status": JobStatus.SUCCEEDED, "result": result, "finished_at": now, "lease_expires_at": None,
        "updated_at": now})


def fail_attempt(job_id: int, attempt: int, error: str, *, lost: bool = False,
                 now: datetime | None = None) -> Job | None:
    """running → retrying (next attempt dispatched after the backoff) or → failed after the last attempt.

    `lost`: the attempt's worker died (its lease expired); the retry is dispatched at once, and only if the lease
    is still expired when the update applies.
    """
    job = db.session.get(Job, job_id, populate_existing=True)
    if job is None:
        return None
    now = now or utcnow()
    conditions = [Job.status == JobStatus.RUNNING, Job.attempts == attempt]
    if lost:
        conditions.append(Job.lease_expires_at < now)
    values: dict[str, Any] = {"error": error[:4000], "lease_expires_at": None, "updated_at": now}
    retry = attempt < job.max_attempts
    delay = 0.0
    if retry:
        delay = 0.0 if lost else queue.backoff_delay(attempt, current_app.config["JOB_BACKOFF_BASE_SECONDS"])
        values.update(status=JobStatus.RETRYING, next_attempt_at=now + timedelta(seconds=delay))
    else:
        values.update(status=JobStatus.FAILED, finished_at=now)
    job = _apply(job_id, conditions, values)
    if job is not None and retry:
        try:
            queue.dispatch(job.id, job.type, attempt + 1, delay)
        except redis.RedisError as exc:
            # The row says retrying with a due time; the reaper dispatches it once it is overdue.
            log.warning("could not dispatch retry of job %s: %s", job.id, exc)
    return job


def _lease() -> timedelta:
    return timedelta(seconds=current_app.config["JOB_LEASE_SECONDS"])


# --- recovery and maintenance (workers' maintenance loop, the ops CLI) ---

def reap_lost_jobs(now: datetime | None = None) -> int:
    """Retry running jobs whose worker died (lease expired) and re-dispatch overdue waiting jobs RQ lost.

    Returns how many jobs it acted on. Safe to run in every worker at once: each action is a compare-and-set or
    recognises an attempt RQ already holds.
    """
    now = now or utcnow()
    acted = 0
    lost = db.session.execute(sa.select(Job.id, Job.attempts).where(
        Job.status == JobStatus.RUNNING, Job.lease_expires_at < now).limit(REAP_BATCH)).all()
    for job_id, attempt in lost:
        if fail_attempt(job_id, attempt, f"worker lost during attempt {attempt} (lease expired)", lost=True, now=now):
            log.warning("job %s: attempt %s lost with its worker; retrying", job_id, attempt)
            acted += 1
    overdue = db.session.execute(sa.select(Job.id, Job.type, Job.attempts).where(
        Job.status.in_(WAITING), Job.next_attempt_at < now - _lease()).limit(REAP_BATCH)).all()
    db.session.commit()
    for job_id, job_type, attempts in overdue:
        try:
            if queue.ensure_dispatched(job_id, job_type, attempts + 1):
                log.warning("job %s: attempt %s was overdue and not queued; dispatched again", job_id, attempts + 1)
                acted += 1
        except redis.RedisError as exc:
            log.warning("reaper could not check job %s: %s", job_id, exc)
            break
    return acted


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
            try:
                queue.dispatch(job_id, job_type, 1)
            except redis.RedisError as exc:
                log.warning("requeued job %s not dispatched yet (the reaper will): %s", job_id, exc)
    return count


def purge_expired_idempotency_keys(now: datetime | None = None) -> int:
    """Forget Idempotency-Keys older than 24 h (their jobs stay); returns how many were cleared."""
    cutoff = (now or utcnow()) - IDEMPOTENCY_TTL
    result = db.session.execute(sa.update(Job).where(Job.idempotency_key.is_not(None), Job.created_at < cutoff)
                                .values(idempotency_key=None, request_hash=None)
                                .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount
