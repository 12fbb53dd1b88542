"""Socket connect and disconnect: authentication from `auth.token`, the user's own room, presence cleanup.

A refused connection raises `ConnectionRefusedError(message, {"code": ...})`: the client's `connect_error` gets
`err.message` saying why (missing, expired, revoked, invalid/forged token) and `err.data.code`. The user id comes
from the verified token only; anything else the client sends about who it is is ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import request
from flask_socketio import ConnectionRefusedError, join_room

from ..auth import tokens
from ..errors import ApiError
from ..observability import metrics
from . import runtime
from .broadcast import user_room

log = logging.getLogger(__name__)

MESSAGES = {
    "token_missing": "Authentication required: connect with auth: {token: '<access token>'} (token missing).",
    "token_expired": "Token has expired; refresh it and reconnect.",
    "token_revoked": "Token has been revoked (logged out); log in again.",
    "invalid_token": "Token is invalid: malformed, forged or signed with another key.",
    "wrong_token_type": "An access token is required (a refresh token was given).",
}


def refuse(code: str, message: str | None = None) -> None:
    metrics.auth_attempt("socket", ok=False)
    raise ConnectionRefusedError(message or MESSAGES.get(code, code), {"code": code})


def on_connect(auth: Any = None) -> None:
    rt = runtime.current()
    if rt.closing:
        refuse("server_closing", "This server is shutting down; reconnect in a moment.")
    token = auth.get("token") if isinstance(auth, dict) else None
    if not isinstance(token, str) or not token.strip():
        refuse("token_missing")
    try:
        claims = tokens.decode_checked(token.strip(), "access")
    except ApiError as exc:
        refuse(exc.code, MESSAGES.get(exc.code, exc.message))
    user_id = int(claims["sub"])
    rt.register(request.sid, user_id, str(claims.get("name") or ""))
    # The WSGI environ is kept for the socket's lifetime; the parsed request Flask cached in it is not needed
    # (each event builds its own) and is most of a connection's memory after the greenlets.
    request.environ.pop("werkzeug.request", None)
    metrics.auth_attempt("socket", ok=True)
    join_room(user_room(user_id))
    rt.ensure_started()


def on_disconnect(reason: Any = None) -> None:
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
