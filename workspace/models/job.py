"""Background jobs: the database row is the source of truth for a job's state."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from ..extensions import db
from .types import UtcDateTime, str_enum, utcnow


class JobStatus(StrEnum):
    """queued → running → (retrying → running)* → succeeded | failed."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED)


class Job(db.Model):
    __tablename__ = "jobs"
    __table_args__ = (
        # Idempotency-Key is per user; the unique index makes a concurrent double submit create one row.
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_jobs_user_idempotency_key"),
        sa.Index("ix_jobs_project_created", "project_id", "created_at"),
        sa.Index("ix_jobs_status_updated", "status", "updated_at"),
        {"sqlite_autoincrement": True},  # ids never reused (see models/sqlite.py)
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    type: so.Mapped[str] = so.mapped_column(sa.String(40))
    payload: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)
    status: so.Mapped[JobStatus] = so.mapped_column(str_enum(JobStatus), default=JobStatus.QUEUED)
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    max_attempts: so.Mapped[int] = so.mapped_column(default=3)
    progress: so.Mapped[dict[str, Any] | None] = so.mapped_column(sa.JSON)
    result: so.Mapped[Any | None] = so.mapped_column(sa.JSON)
    error: so.Mapped[str | None] = so.mapped_column(sa.Text)
    idempotency_key: so.Mapped[str | None] = so.mapped_column(sa.String(255))
    # Hash of the submitted body: the same key with a different body is a 409, not a replay.
    request_hash: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    created_at: so.Mapped[datetime] = so.mapped_column(UtcDateTime(), default=utcnow)
    updated_at: so.Mapped[datetime] = so.mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    started_at: so.Mapped[datetime | None] = so.mapped_column(UtcDateTime())
    finished_at: so.Mapped[datetime | None] = so.mapped_column(UtcDateTime())
    # When a queued/retrying job is due (backoff); the reaper re-dispatches one that is overdue and not in RQ.
    next_attempt_at: so.Mapped[datetime | None] = so.mapped_column(UtcDateTime())
    # A running job's worker extends this while it works; past it, the worker is presumed dead and the job retried.
    lease_expires_at: so.Mapped[datetime | None] = so.mapped_column(UtcDateTime())


class JobArtifact(db.Model):
    """A job's stored output (an export's zip), kept in the database so any web process can serve it.

    The bytes are in `JobArtifactChunk` rows, written and read one chunk at a time: neither the worker that builds
    an export nor the web process that serves it ever holds the whole archive in memory.
    """

    __tablename__ = "job_artifacts"

    job_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    content_type: so.Mapped[str] = so.mapped_column(sa.String(100), default="application/zip")
    filename: so.Mapped[str] = so.mapped_column(sa.String(255))
    size: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    sha256: so.Mapped[str] = so.mapped_column(sa.String(64))
    created_at: so.Mapped[datetime] = so.mapped_column(UtcDateTime(), default=utcnow)


class JobArtifactChunk(db.Model):
    """One piece (at most `ARTIFACT_CHUNK_BYTES`) of an artifact's bytes; `seq` orders them from 0."""

    __tablename__ = "job_artifact_chunks"

    job_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: so.Mapped[int] = so.mapped_column(primary_key=True, autoincrement=False)
    data: so.Mapped[bytes] = so.mapped_column(sa.LargeBinary)
