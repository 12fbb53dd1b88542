"""Server → client events, the one way any part of the app (REST views, socket handlers, RQ workers) emits them.

Room events carry a per-project `seq` (a Redis counter, so it is monotonic across every process and the worker),
and every client receives a project's events in seq order; the project keeps a bounded history of them for
`join {since_seq}`. Both are `ordered.emit`'s work: one Lua script, one Redis round trip per room event.
Emits go through the Socket.IO message queue when REDIS_URL is set, so they reach clients on every process.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import current_app

from ..extensions import socketio
from ..models.types import utcnow
from ..observability import metrics
from . import ordered, presence

log = logging.getLogger(__name__)


def project_room(project_id: int) -> str:
    return f"project:{project_id}"


def user_room(user_id: int) -> str:
    """Every socket of a user joins this room at connect, so events can target the user on any process."""
    return f"user:{user_id}"


def now_iso() -> str:
    return utcnow().isoformat()


def _emitter():
    """The Socket.IO server, or a write-only emitter registered by a process that serves no clients (RQ worker)."""
    return current_app.extensions.get("socketio_emitter") or socketio


def emit_to_project(project_id: int, event: str, payload: dict[str, Any], skip_sid: str | None = None) -> dict:
    """Emit `event` to the project's room with the next `seq`; returns the payload as sent.

    Without Redis there is no `seq` to give: the event is dropped (logged) and the returned payload has
    `seq: None`, so a REST write that already committed is not turned into a 500 by a broadcast.
    """
    room = project_room(project_id)
    emitter = _emitter()

    def local_emit(message: dict[str, Any]) -> None:
        emitter.emit(event, message, to=room, skip_sid=skip_sid)

    try:
        # The realtime layer's own queue manager (see realtime.init_app), in the web process and the worker alike.
        return ordered.emit(project_id, event, payload, room, skip_sid, current_app.extensions.get("realtime_queue"),
                            local_emit)
    except redis.RedisError as exc:
        log.warning("event %s for project %s not sent, Redis unavailable: %s", event, project_id, exc)
        return {**payload, "project_id": project_id, "seq": None}


def emit_to_user(user_id: int, event: str, payload: dict[str, Any]) -> None:
    _emitter().emit(event, payload, to=user_room(user_id))
    metrics.event_emitted(event)


def user_joined(project_id: int, user: dict, skip_sid: str | None = None) -> dict:
    return emit_to_project(project_id, "USER_JOIN", {"user": user, "at": now_iso()}, skip_sid=skip_sid)


def user_left(project_id: int, user: dict) -> dict:
    return emit_to_project(project_id, "USER_LEAVE", {"user": user, "at": now_iso()})


def evict(project_id: int, user_id: int) -> None:
    """Take every socket of `user_id` out of the project's room, on every process, at once.

    Presence knows each joined socket as (process, sid). python-socketio's manager leaves the room directly for a
    local sid and publishes a `leave_room` on the message queue for a remote one, which the owning process applies
    (messages on the queue keep their order, so no room event published after this reaches the evicted sockets).
    """
    server = _emitter().server
    try:
        sockets = presence.sockets_of(project_id, user_id)
    except redis.RedisError as exc:
        log.warning("cannot evict user %s from project %s, Redis unavailable: %s", user_id, project_id, exc)
        return
    runtime = current_app.extensions.get("realtime")
    gone = None
    for proc, sid in sockets:
        server.leave_room(sid, project_room(project_id), namespace="/")
        if runtime is not None and proc == runtime.proc and (conn := runtime.connection(sid)) is not None:
            conn.projects.discard(project_id)
        gone = presence.remove(project_id, proc, sid) or gone
    if gone:
        user_left(project_id, gone)
