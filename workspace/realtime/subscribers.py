"""What clients are told when the domain changes: the realtime layer's receivers of `workspace.events`.

Each receiver gets the sending app first (blinker's sender) and the event's keyword arguments; it runs inside that
app's context, in the web process or the RQ worker (which emits through its write-only Socket.IO emitter).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask

from .. import events
from . import activity, presence
from .broadcast import emit_to_project, emit_to_user, evict, now_iso

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Subscribe this app's realtime layer to the domain events (idempotent per app)."""
    events.file_saved.connect(file_saved, sender=app)
    events.file_deleted.connect(file_deleted, sender=app)
    events.membership_changed.connect(membership_changed, sender=app)
    events.project_deleted.connect(project_deleted, sender=app)
    events.job_updated.connect(job_updated, sender=app)


def file_saved(app: Flask, *, project_id: int, path: str, version: int, content: str, user: dict,
               skip_sid: str | None = None, **_: Any) -> None:
    """FILE_CHANGE with the new content to the room (the sender's socket skipped when it came over Socket.IO)."""
    emit_to_project(project_id, "FILE_CHANGE",
                    {"path": path, "version": version, "user": user, "at": now_iso(), "content": content},
                    skip_sid=skip_sid)


def file_deleted(app: Flask, *, project_id: int, path: str, version: int, user: dict,
                 skip_sid: str | None = None, **_: Any) -> None:
    """FILE_CHANGE with `deleted: true` and the last version."""
    emit_to_project(project_id, "FILE_CHANGE",
                    {"path": path, "version": version, "user": user, "at": now_iso(), "deleted": True},
                    skip_sid=skip_sid)


def membership_changed(app: Flask, *, project_id: int, user_id: int, role: str | None, **_: Any) -> None:
    """MEMBERSHIP_CHANGED to the affected user; role None means removed (their sockets leave the room first)."""
    if role is None:
        evict(project_id, user_id)
    emit_to_user(user_id, "MEMBERSHIP_CHANGED", {"project_id": project_id, "role": role})


def project_deleted(app: Flask, *, project_id: int, member_ids: list[int], **_: Any) -> None:
    """Every former member is told (role null) and leaves the room; the project's presence and activity go."""
    for user_id in member_ids:
        membership_changed(app, project_id=project_id, user_id=user_id, role=None)
    try:
        presence.clear_project(project_id)
        activity.clear(project_id)
    except redis.RedisError as exc:
        log.warning("presence of deleted project %s not cleared: %s", project_id, exc)


def job_updated(app: Flask, *, job: Any, **_: Any) -> None:
    """JOB_UPDATE to the job's project room; a failed emit is logged, never undoes the committed change."""
    payload = {"job_id": job.id, "status": str(getattr(job.status, "value", job.status)), "attempts": job.attempts}
    if job.progress:
        payload["progress"] = job.progress
    try:
        emit_to_project(job.project_id, "JOB_UPDATE", payload)
    except Exception as exc:  # the row is the truth; clients re-read it (GET /jobs/<id>) after a missed event
        log.warning("JOB_UPDATE for job %s not sent: %s", job.id, exc)
