"""Client → server events: `join`, `leave`, `FILE_CHANGE`, `CURSOR_UPDATE` (see the contract's socket table).

Roles are checked on every event with `policy.authorize` (never cached: a downgrade applies to the next event);
for CURSOR_UPDATE, which every role may send, room membership is the check (see `_authorize_cursor`).
FILE_CHANGE goes through the same files service as REST PUT, which persists, versions and broadcasts to the room
(skipping the sender). CURSOR_UPDATE is best-effort: per-socket throttled and coalesced to the latest position.
Other events share a per-socket budget (SOCKET_EVENT_RATE_PER_SECOND) so one client cannot monopolise the process.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, request
from flask_socketio import join_room

from ..errors import ApiError, Forbidden, ServiceUnavailable, Unauthorized
from ..extensions import db
from ..files import service as files
from ..models import Role
from ..policy import Action, authorize, can
from . import acks, broadcast, failpoints, ordered, presence, runtime
from .acks import acked
from .payloads import CURSOR, FILE_CHANGE, JOIN, LEAVE

log = logging.getLogger(__name__)


def _caller(budget: bool = True) -> tuple[runtime.Runtime, runtime.Connection]:
    rt = runtime.current()
    conn = rt.connection(request.sid)
    if conn is None:  # cannot happen after a successful connect; refuse rather than trust anything else
        raise Unauthorized("This socket is not authenticated; reconnect with a token.")
    if budget and not conn.events.take():
        raise ApiError("Too many events from this socket; slow down.", code="rate_limited", status=429)
    return rt, conn


@acked
def on_join(payload: dict[str, Any]) -> dict[str, Any]:
    loaded = acks.load(JOIN, payload)
    project_id, since = loaded["project_id"], loaded["since_seq"]
    rt, conn = _caller()
    if rt.closing:
        raise ServiceUnavailable("This server is shutting down; reconnect and join again.")
    role = authorize(project_id, conn.user_id, Action.READ)
    sid = request.sid
    if not rt.in_room(sid, project_id):
        failpoints.reach("join.after_authorize")
        first = presence.add(project_id, rt.proc, sid, conn.user)  # first: if Redis fails, nothing half-joined
        failpoints.reach("join.after_presence")
        join_room(broadcast.project_room(project_id))
        conn.projects.add(project_id)
        role = _recheck_membership(rt, sid, project_id, conn.user_id)
        if first:
            broadcast.user_joined(project_id, conn.user, skip_sid=sid)
    # Read after entering the room: every later event arrives live, every earlier one (after since_seq) is in
    # `missed`; one published meanwhile may come both ways, and clients drop a seq they already have.
    seen = ordered.replay(project_id, since) if since is not None else {"seq": ordered.current_seq(project_id)}
    return {"project_id": project_id, "role": role.value, "presence": presence.online(project_id), **seen}


def _recheck_membership(rt: runtime.Runtime, sid: str, project_id: int, user_id: int) -> Role:
    """Membership again, now that the socket is in the room and in presence.

    A removal evicts the sockets it finds in presence after its commit. One that committed after our first check
    but read presence before our entry did not see this socket: this check (in a fresh transaction) sees that
    removal; any later removal finds the socket in presence and evicts it from the room.
    """
    db.session.rollback()  # a new snapshot: the removal may have committed since the first check
    try:
        return authorize(project_id, user_id, Action.READ)
    except ApiError:
        conn = rt.connection(sid)
        if conn is not None:
            conn.projects.discard(project_id)
        rt.server.leave_room(sid, broadcast.project_room(project_id))
        presence.remove(project_id, rt.proc, sid)
        raise


@acked
def on_leave(payload: dict[str, Any]) -> dict[str, Any]:
    project_id = acks.load(LEAVE, payload)["project_id"]
    rt, conn = _caller()
    if project_id in conn.projects or rt.in_room(request.sid, project_id):
        rt.leave_project(request.sid, project_id)
    return {"project_id": project_id}


@acked
def on_file_change(payload: dict[str, Any]) -> dict[str, Any]:
    change = acks.load(FILE_CHANGE, payload)
    project_id = change["project_id"]
    _, conn = _caller()
    saved = files.save_file(project_id, conn.user, change["path"], change["content"], change.get("base_version"),
                            skip_sid=request.sid)
    return {"project_id": project_id, "path": saved.path, "version": saved.version, "created": saved.created}


@acked
def on_cursor_update(payload: dict[str, Any]) -> dict[str, Any]:
    message = acks.load(CURSOR, payload)
    project_id = message.pop("project_id")
    rt, conn = _caller(budget=False)
    sid = request.sid
    if not rt.in_room(sid, project_id):
        raise Forbidden("Join the project before sending cursor updates.", code="not_joined")
    message["user"] = conn.user
    decision = conn.cursor.offer({"project_id": project_id, **message})
    if decision == "send":
        _authorize_cursor(project_id, conn.user_id)
        sent = broadcast.emit_to_project(project_id, "CURSOR_UPDATE", message, skip_sid=sid)
        if sent["seq"] is None:
            raise ServiceUnavailable("Realtime store unavailable; try again shortly.")
        return {"seq": sent["seq"]}
    if decision == "schedule":
        rt.server.start_background_task(_flush_cursor, current_app._get_current_object(), rt, sid)
    return {"coalesced": True}


# When the policy lets every role send cursors (it does: viewers show where they are), being in the room IS the
# permission: only a member can join, and losing membership (removal, project deletion) takes the socket out of the
# room at once on every process. That spares a database query per cursor move (the hottest event by far); should
# the policy ever withhold CURSOR from a role, the query comes back by itself.
CURSOR_NEEDS_QUERY = not all(can(role, Action.CURSOR) for role in Role)


def _authorize_cursor(project_id: int, user_id: int) -> None:
    if CURSOR_NEEDS_QUERY:
        authorize(project_id, user_id, Action.CURSOR)


def _flush_cursor(app: Flask, rt: runtime.Runtime, sid: str) -> None:
    """Send a socket's held (latest) cursor position once its bucket has a token again."""
    conn = rt.connection(sid)
    if conn is None:
        return
    rt.server.sleep(conn.cursor.bucket.wait_time())
    held = conn.cursor.pop()
    if held is None or rt.connection(sid) is None:
        return
    project_id = held.pop("project_id")
    with app.app_context():
        try:
            if rt.in_room(sid, project_id):
                _authorize_cursor(project_id, conn.user_id)
                broadcast.emit_to_project(project_id, "CURSOR_UPDATE", held, skip_sid=sid)
        except ApiError:
            pass  # lost the right to the room meanwhile: a best-effort event is simply dropped
        except Exception:
            log.exception("held cursor update not sent")


EVENTS = {
    "join": on_join,
    "leave": on_leave,
    "FILE_CHANGE": on_file_change,
    "CURSOR_UPDATE": on_cursor_update,
}
