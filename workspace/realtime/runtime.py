"""One process's realtime state: its connected sockets, its heartbeat and reaper, its clean shutdown.

A `Runtime` belongs to one app and its Socket.IO server (`app.extensions["realtime"]`). It is process-local memory
only (who is on which sid, their cursor throttles); everything other processes must see lives in Redis (presence).
Background loops use the server's own `start_background_task`/`sleep`, so eventlet, gevent and threading all work,
and they stop when the app's server is replaced (tests build many apps in one process) or the process shuts down.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Flask, current_app

from ..extensions import socketio
from . import broadcast, presence
from .throttle import Coalescer, TokenBucket

log = logging.getLogger(__name__)


@dataclass(slots=True)  # one per socket: no per-instance __dict__
class Connection:
    """A socket's verified identity (from its token, never from the client) and its local bookkeeping."""

    user_id: int
    name: str
    projects: set[int] = field(default_factory=set)
    cursor: Coalescer | None = None
    events: TokenBucket | None = None

    @property
    def user(self) -> dict[str, Any]:
        return {"id": self.user_id, "name": self.name}


class Runtime:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.server = socketio.server
        self.proc = uuid.uuid4().hex[:16]
        self.connections: dict[str, Connection] = {}
        # (project, sid) of closed sockets whose presence could not be removed (Redis down); retried each beat.
        self.orphans: set[tuple[int, str]] = set()
        self.started = False
        self.closing = False

    # --- sockets -----------------------------------------------------------------------------------------------
    def register(self, sid: str, user_id: int, name: str) -> Connection:
        config = self.app.config
        cursor_rate = config["CURSOR_RATE_PER_SECOND"]
        event_rate = config["SOCKET_EVENT_RATE_PER_SECOND"]
        conn = Connection(
            user_id=user_id, name=name,
            cursor=Coalescer(TokenBucket(rate=cursor_rate, burst=max(1, cursor_rate))),
            events=TokenBucket(rate=event_rate, burst=max(1, 2 * event_rate)),
        )
        self.connections[sid] = conn
        return conn

    def connection(self, sid: str) -> Connection | None:
        return self.connections.get(sid)

    def unregister(self, sid: str) -> Connection | None:
        return self.connections.pop(sid, None)

    def in_room(self, sid: str, project_id: int) -> bool:
        """Joined and not evicted since (an eviction from another process removes the room, not our bookkeeping)."""
        conn = self.connections.get(sid)
        if conn is None or project_id not in conn.projects:
            return False
        # `server.rooms(sid)` walks every room of the namespace (each socket has one of its own): O(sockets) on the
        # hottest event. The manager's `rooms` map answers the one question asked in O(1).
        members = self.server.manager.rooms.get("/", {}).get(broadcast.project_room(project_id))
        return members is not None and sid in members

    def leave_project(self, sid: str, project_id: int) -> None:
        """Socket `sid` leaves the room and its presence; USER_LEAVE when it was the user's last socket there."""
        conn = self.connections.get(sid)
        if conn is not None:
            conn.projects.discard(project_id)
        self.server.leave_room(sid, broadcast.project_room(project_id))
        user = presence.remove(project_id, self.proc, sid)
        if user:
            broadcast.user_left(project_id, user)

    # --- background: heartbeat and reaper ----------------------------------------------------------------------
    def ensure_started(self) -> None:
        """Beat once now (so this process's sockets count at once), then keep beating and reaping in the background."""
        if self.started:
            return
        self.started = True
        with self.app.app_context():
            self.tick()
        self.server.start_background_task(self._loop)

    def _interval(self) -> float:
        return max(0.5, self.app.config["PRESENCE_TTL_SECONDS"] / 3)

    def _loop(self) -> None:
        while not self.closing and socketio.server is self.server:
            self.server.sleep(self._interval())
            if self.closing or socketio.server is not self.server:
                break
            with self.app.app_context():
                try:
                    self.tick()
                except redis.RedisError as exc:
                    log.warning("presence heartbeat failed (will retry): %s", exc)
                except Exception:
                    log.exception("presence heartbeat crashed (will retry)")

    def tick(self) -> None:
        """One heartbeat plus one reaping pass."""
        lost = presence.heartbeat(self.proc)
        if lost and any(conn.projects for conn in self.connections.values()):
            self._reassert()
        for project_id, sid in list(self.orphans):
            user = presence.remove(project_id, self.proc, sid)
            self.orphans.discard((project_id, sid))
            if user:
                broadcast.user_left(project_id, user)
        self.reap()

    def _reassert(self) -> None:
        """Redis lost our presence (restart, or we missed the TTL and were reaped): write it back, announce again."""
        log.warning("presence of this process was lost in Redis; re-registering %d sockets", len(self.connections))
        for sid, conn in list(self.connections.items()):
            for project_id in list(conn.projects):
                if presence.add(project_id, self.proc, sid, conn.user):
                    broadcast.user_joined(project_id, conn.user)

    def reap(self) -> None:
        """Clean up after processes that died without cleanup: their users leave, the rooms are told."""
        for proc in presence.dead_processes(self.proc):
            if not presence.claim(proc):
                continue
            left = presence.reap(proc)
            log.warning("reaped dead realtime process %s: %d users left", proc, len(left))
            for project_id, user in left:
                broadcast.user_left(project_id, user)

    # --- shutdown ----------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Graceful stop: every local socket leaves its rooms at once (USER_LEAVE), then the sockets are closed at
        the transport level, so clients reconnect (to another process behind the proxy) instead of giving up."""
        if self.closing:
            return
        self.closing = True
        with self.app.app_context():
            for sid, conn in list(self.connections.items()):
                for project_id in list(conn.projects):
                    try:
                        self.leave_project(sid, project_id)
                    except Exception:
                        log.exception("presence cleanup failed for a socket at shutdown")
            try:
                presence.forget_process(self.proc)
            except redis.RedisError as exc:
                log.warning("could not unregister this process from Redis at shutdown: %s", exc)
        # Document editors (co-editing namespaces) hold Engine.IO connections of their own: closed the same way.
        coedit = self.app.extensions.get("coedit")
        editors = [(sid, editor.namespace) for sid, editor in coedit.editors.items()] if coedit else []
        for sid, namespace in [(sid, "/") for sid in self.connections] + editors:
            eio_sid = self.server.manager.eio_sid_from_sid(sid, namespace)
            if eio_sid:
                self.server.eio.disconnect(eio_sid)
        log.info("realtime shutdown: presence cleared, sockets closed")


def current() -> Runtime:
    return current_app.extensions["realtime"]
