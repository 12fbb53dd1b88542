"""Server → client events, the one way any part of the app (REST views, socket handlers, RQ workers) emits them.

Room events carry a per-project `seq` (a Redis counter, so it is monotonic across every process and the worker),
and every client receives a project's events in seq order (see `_emit_in_seq_order`). Emits go through the
Socket.IO message queue when REDIS_URL is set, so they reach clients on every process.
Room events (cursor moves aside) are also kept in a short per-project list for the workspace status endpoint.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import redis
from flask import current_app
from socketio import RedisManager

from ..extensions import redis_store, socketio
from ..models.types import utcnow
from ..observability import metrics

log = logging.getLogger(__name__)
# Fallback ordering (embedded mode, or a queue on another Redis): taking a seq and emitting happen under one lock,
# so this process sends a project's events in seq order. threading.Lock is green under eventlet/gevent patching.
_SEQ_ORDER = threading.Lock()
SEQ_PLACEHOLDER = "__workspace_seq__"
# With the Socket.IO queue on our Redis, the seq is taken and the event published in ONE atomic script: Redis runs
# scripts one at a time, so the queue carries every project's events in seq order, for every process (the sender's
# own process included: it receives the message like the others), with no lock held across round trips. The seq
# is the first key of the payload, so the first quoted placeholder in the JSON is ours.
_ORDERED_EMIT = """
local seq = redis.call('INCR', KEYS[1])
local msg = string.gsub(ARGV[1], '"' .. ARGV[2] .. '"', tostring(seq), 1)
redis.call('PUBLISH', KEYS[2], msg)
return seq
"""
ORDERED_HOST_ID = "workspace-ordered-emit"


def project_room(project_id: int) -> str:
    return f"project:{project_id}"


def user_room(user_id: int) -> str:
    """Every socket of a user joins this room at connect, so events can target the user on any process."""
    return f"user:{user_id}"


def now_iso() -> str:
    return utcnow().isoformat()


def next_seq(project_id: int) -> int:
    return int(redis_store.client.incr(redis_store.key("project", project_id, "seq")))


def current_seq(project_id: int) -> int:
    return int(redis_store.client.get(redis_store.key("project", project_id, "seq")) or 0)


def _emitter():
    """The Socket.IO server, or a write-only emitter registered by a process that serves no clients (RQ worker)."""
    return current_app.extensions.get("socketio_emitter") or socketio


def emit_to_project(project_id: int, event: str, payload: dict[str, Any], skip_sid: str | None = None) -> dict:
    """Emit `event` to the project's room with the next `seq`; returns the payload as sent.

    Without Redis there is no `seq` to give: the event is dropped (logged) and the returned payload has
    `seq: None`, so a REST write that already committed is not turned into a 500 by a broadcast.
    """
    try:
        message = _emit_in_seq_order(project_id, event, payload, skip_sid)
    except redis.RedisError as exc:
        log.warning("event %s for project %s not sent, Redis unavailable: %s", event, project_id, exc)
        return {**payload, "project_id": project_id, "seq": None}
    metrics.event_emitted(event)
    from . import activity

    try:
        activity.record(project_id, event, message, now_iso())
    except redis.RedisError as exc:
        log.warning("recent events of project %s not recorded: %s", project_id, exc)
    return message


def _emit_in_seq_order(project_id: int, event: str, payload: dict[str, Any], skip_sid: str | None) -> dict:
    emitter = _emitter()
    manager = getattr(emitter.server, "manager", None)
    seq_key = redis_store.key("project", project_id, "seq")
    if isinstance(manager, RedisManager) and manager.redis_url == current_app.config.get("REDIS_URL"):
        message = {"seq": SEQ_PLACEHOLDER, **payload, "project_id": project_id}
        envelope = {"method": "emit", "event": event, "data": [message], "binary": False, "namespace": "/",
                    "room": project_room(project_id), "skip_sid": skip_sid, "callback": None,
                    "host_id": ORDERED_HOST_ID}
        script = redis_store.client.register_script(_ORDERED_EMIT)  # EVALSHA, loading the script when missing
        seq = script(keys=[seq_key, manager.channel], args=[json.dumps(envelope), SEQ_PLACEHOLDER])
        return {**message, "seq": int(seq)}
    with _SEQ_ORDER:
        message = {**payload, "project_id": project_id, "seq": next_seq(project_id)}
        emitter.emit(event, message, to=project_room(project_id), skip_sid=skip_sid)
    return message


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
    from . import presence

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
