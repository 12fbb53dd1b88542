"""Socket connect and disconnect of the default namespace, the `auth` event and the token guard of every event.

A refused connection raises `ConnectionRefusedError(message, {"code": ...})`: the client's `connect_error` gets
`err.message` saying why (missing, expired, revoked, invalid/forged token) and `err.data.code`. The user id comes
from the verified token only; anything else the client sends about who it is is ignored. The token's life after
connect (revocation, expiry, hand-over) is `sessions.py`'s, shared with the other namespaces.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import request
from flask_socketio import join_room

from ..errors import ApiError
from ..observability import metrics
from . import acks, runtime, sessions
from .broadcast import user_room

log = logging.getLogger(__name__)
NAMESPACE = "/"


def on_connect(auth: Any = None) -> None:
    rt = runtime.current()
    if rt.closing:
        sessions.refuse("server_closing", "This server is shutting down; reconnect in a moment.")
    claims = sessions.authenticate(auth)
    session = sessions.current().open(request.sid, NAMESPACE, claims)
    rt.register(request.sid, session.user_id, session.name)
    # The WSGI environ is kept for the socket's lifetime; the parsed request Flask cached in it is not needed
    # (each event builds its own) and is most of a connection's memory after the greenlets.
    request.environ.pop("werkzeug.request", None)
    metrics.auth_attempt("socket", ok=True)
    join_room(user_room(session.user_id))
    rt.ensure_started()


def on_disconnect(reason: Any = None) -> None:
    sessions.current().close(request.sid, NAMESPACE)
    rt = runtime.current()
    conn = rt.connection(request.sid)
    if conn is None:
        return
    for project_id in list(conn.projects):
        try:
            rt.leave_project(request.sid, project_id)
        except Exception as exc:
            # Redis down: the heartbeat loop retries, so the entry does not outlive the socket for long.
            log.warning("presence cleanup failed at disconnect, will retry: %s", exc)
            rt.orphans.add((project_id, request.sid))
    rt.unregister(request.sid)


@acks.acked
def on_auth(payload: dict[str, Any]) -> dict[str, Any]:
    """`auth` `{token}`: hand over a fresh access token of the same user; ack `{expires_at}`."""
    session = sessions.current().hand_over(request.sid, NAMESPACE, payload.get("token"))
    return {"expires_at": session.expires_at_iso}


def live_token_required(handler: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Refuse an event with `token_expired` (as its ack) once the socket's access token has expired."""

    @functools.wraps(handler)
    def guarded(*args: Any) -> dict[str, Any]:
        try:
            sessions.current().require_live(request.sid, NAMESPACE)
        except ApiError as exc:
            return acks.error_ack(exc)
        return handler(*args)

    return guarded
