"""Server → client events, the one way any part of the app (REST views, socket handlers, RQ workers) emits them.

Room events carry a per-project `seq` (a Redis counter, so it is monotonic across every process and the worker).
Emits go through the Socket.IO message queue when REDIS_URL is set, so they reach clients on every process.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from ..extensions import redis_store, socketio
from ..models.types import utcnow


def project_room(project_id: int) -> str:
    return f"project:{project_id}"


def user_room(user_id: int) -> str:
    """Every socket of a user joins this room at connect, so events can target the user on any process."""
    return f"user:{user_id}"


def now_iso() -> str:
    return utcnow().isoformat()


def next_seq(project_id: int) -> int:
    return int(redis_store.client.incr(redis_store.key("project", project_id, "seq")))


def _emitter():
    """The Socket.IO server, or a write-only emitter registered by a process that serves no clients (RQ worker)."""
    return current_app.extensions.get("socketio_emitter") or socketio


def emit_to_project(project_id: int, event: str, payload: dict[str, Any], skip_sid: str | None = None) -> dict:
    """Emit `event` to the project's room with the next `seq`; returns the payload as sent."""
    message = {**payload, "project_id": project_id, "seq": next_seq(project_id)}
    _emitter().emit(event, message, to=project_room(project_id), skip_sid=skip_sid)
    return message


def emit_to_user(user_id: int, event: str, payload: dict[str, Any]) -> None:
    _emitter().emit(event, payload, to=user_room(user_id))


def file_changed(project_id: int, *, path: str, version: int, user: dict, content: str | None = None,
                 deleted: bool = False, skip_sid: str | None = None) -> dict:
    """FILE_CHANGE to the room (the sender's socket skipped when the change came over Socket.IO)."""
    payload: dict[str, Any] = {"path": path, "version": version, "user": user, "at": now_iso()}
    if deleted:
        payload["deleted"] = True
    else:
        payload["content"] = content
    return emit_to_project(project_id, "FILE_CHANGE", payload, skip_sid=skip_sid)


def membership_changed(project_id: int, user_id: int, role: str | None) -> None:
    """MEMBERSHIP_CHANGED to the affected user; role None means removed (their sockets leave the room)."""
    emit_to_user(user_id, "MEMBERSHIP_CHANGED", {"project_id": project_id, "role": role})


def project_deleted(project_id: int, member_ids: list[int]) -> None:
    """Every former member is told (role null) and leaves the room."""
    for user_id in member_ids:
        membership_changed(project_id, user_id, None)


def job_updated(job) -> dict:
    """JOB_UPDATE to the job's project room."""
    payload = {"job_id": job.id, "status": str(job.status.value if hasattr(job.status, "value") else job.status),
               "attempts": job.attempts}
    if job.progress:
        payload["progress"] = job.progress
    return emit_to_project(job.project_id, "JOB_UPDATE", payload)
