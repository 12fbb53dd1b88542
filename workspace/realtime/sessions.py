"""The token behind each socket connection, for the whole life of the connection, in any namespace.

The contract's token rules do not stop at connect:
- revocation (logout, refresh-token re-use revoking a family) disconnects every socket using the token, on every
  process, at once: the server sends `SESSION_REVOKED` `{reason}` and then disconnects it;
- after the access token expires every event is refused with `token_expired`, and the socket is disconnected
  SOCKET_TOKEN_GRACE_SECONDS later (after `SESSION_REVOKED` `{reason: "token_expired"}`) unless the client hands
  over a fresh access token of the same user first (the `auth` event; see `hand_over`).

Any namespace uses the same API (the default namespace in `connection.py`, the co-editing namespaces too):
`authenticate(auth)` at connect, `Sessions.open(sid, namespace, claims)` once accepted, `require_live(sid,
namespace)` before acting on an event, `hand_over(sid, namespace, token)` for the `auth` event and
`Sessions.close(sid, namespace)` at disconnect.

Which sockets use a token is kept in Redis (`rt:sock:jti:<jti>` and `rt:sock:fam:<family>`, sets of
"<sid> <namespace>"), so the process that revokes a token finds sockets of every process; the SESSION_REVOKED emit
and the disconnect then travel over the Socket.IO message queue to the owning process, in that order. A socket is
indexed before its token's revocation is checked (at connect and at hand-over), and revocation writes the
blocklist before reading the index: so a connect racing a logout is either refused or found and disconnected.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from flask import Flask, current_app
from flask_socketio import ConnectionRefusedError

from .. import events
from ..auth import tokens
from ..errors import ApiError, Unauthorized
from ..extensions import redis_store, socketio
from ..observability import metrics
from . import failpoints

log = logging.getLogger(__name__)

REVOKED_EVENT = "SESSION_REVOKED"
# How often the expiry sweep runs: the grace period is honoured to within this.
SWEEP_SECONDS = 0.5

REFUSALS = {
    "token_missing": "Authentication required: connect with auth: {token: '<access token>'} (token missing).",
    "token_expired": "Token has expired; refresh it and reconnect.",
    "token_revoked": "Token has been revoked (logged out); log in again.",
    "invalid_token": "Token is invalid: malformed, forged or signed with another key.",
    "wrong_token_type": "An access token is required (a refresh token was given).",
}


class TokenExpired(Unauthorized):
    """The socket's access token has expired: refused until the client hands over a fresh one (`auth`)."""

    code = "token_expired"


@dataclass(slots=True)  # one per socket: no per-instance __dict__
class TokenSession:
    """What a connection knows about its current access token (from the verified claims, never the client)."""

    user_id: int
    name: str
    jti: str
    family: str | None
    expires_at: float  # epoch seconds

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> TokenSession:
        return cls(user_id=int(claims["sub"]), name=str(claims.get("name") or ""), jti=str(claims["jti"]),
                   family=claims.get("fam") or None, expires_at=float(claims["exp"]))

    def expired(self, now: float | None = None) -> bool:
        return (now or time.time()) >= self.expires_at

    @property
    def expires_at_iso(self) -> str:
        return datetime.fromtimestamp(self.expires_at, UTC).isoformat()


def refuse(code: str, message: str | None = None) -> None:
    """Refuse a connection: the client's `connect_error` gets `message` and `data.code`."""
    metrics.auth_attempt("socket", ok=False)
    raise ConnectionRefusedError(message or REFUSALS.get(code, code), {"code": code})


def authenticate(auth: Any) -> dict[str, Any]:
    """The verified claims of the access token in a connect's `auth` payload; refuses the connection otherwise."""
    token = auth.get("token") if isinstance(auth, dict) else None
    if not isinstance(token, str) or not token.strip():
        refuse("token_missing")
    try:
        return tokens.decode_checked(token.strip(), "access")
    except ApiError as exc:
        refuse(exc.code, REFUSALS.get(exc.code, exc.message))
    raise AssertionError("unreachable")  # refuse() always raises


def _member(sid: str, namespace: str) -> str:
    return f"{sid} {namespace}"


def _token_key(jti: str) -> str:
    return redis_store.key("rt", "sock", "jti", jti)


def _family_key(family: str) -> str:
    return redis_store.key("rt", "sock", "fam", family)


class Sessions:
    """This process's token sessions, keyed by (namespace, sid), and the sweep that ends expired ones."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.server = socketio.server
        self.by_sid: dict[tuple[str, str], TokenSession] = {}
        # (expires_at, tiebreak, namespace, sid, session), a heap: the sweep looks at what expired, not at every
        # socket of the process twice a second. Entries of closed or handed-over sessions are skipped when they
        # come up, and dropped all at once when they outnumber the live ones (`_compact`).
        self.expiries: list[tuple[float, int, str, str, TokenSession]] = []
        self._tiebreak = itertools.count()
        self.started = False

    # --- the index in Redis ------------------------------------------------------------------------------------
    def _index(self, sid: str, namespace: str, session: TokenSession) -> None:
        # The index entry must outlive the token a little (a revocation can come up to its expiry); the family's
        # set lives as long as the longest token indexed in it.
        ttl = max(int(session.expires_at - time.time()), 0) + int(self.app.config["SOCKET_TOKEN_GRACE_SECONDS"]) + 60
        pipe = redis_store.client.pipeline(transaction=False)
        pipe.sadd(_token_key(session.jti), _member(sid, namespace))
        pipe.expire(_token_key(session.jti), ttl)
        if session.family:
            pipe.sadd(_family_key(session.family), _member(sid, namespace))
            pipe.expire(_family_key(session.family), ttl, gt=True)
            pipe.expire(_family_key(session.family), ttl, nx=True)
        pipe.execute()

    def _unindex(self, sid: str, namespace: str, session: TokenSession) -> None:
        pipe = redis_store.client.pipeline(transaction=False)
        pipe.srem(_token_key(session.jti), _member(sid, namespace))
        if session.family:
            pipe.srem(_family_key(session.family), _member(sid, namespace))
        pipe.execute()

    def _adopt(self, sid: str, namespace: str, claims: dict[str, Any]) -> TokenSession:
        """Index the socket under the token, then re-check revocation (see the module docstring for why)."""
        session = TokenSession.from_claims(claims)
        self._index(sid, namespace, session)
        if tokens.is_revoked(claims):
            self._unindex(sid, namespace, session)
            raise Unauthorized(REFUSALS["token_revoked"], code="token_revoked")
        return session

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def open(self, sid: str, namespace: str, claims: dict[str, Any]) -> TokenSession:
        """Attach a verified token to a connection being accepted; refuses it if the token was revoked meanwhile."""
        failpoints.reach("connect.after_verify")
        try:
            session = self._adopt(sid, namespace, claims)
        except ApiError as exc:
            refuse(exc.code, REFUSALS.get(exc.code, exc.message))
        self._track(sid, namespace, session)
        self.ensure_started()
        return session

    def get(self, sid: str, namespace: str) -> TokenSession | None:
        return self.by_sid.get((namespace, sid))

    def close(self, sid: str, namespace: str) -> None:
        """The connection is gone: forget it here and in the index."""
        session = self.by_sid.pop((namespace, sid), None)
        if session is None:
            return
        try:
            self._unindex(sid, namespace, session)
        except redis.RedisError as exc:  # the entry expires with the token; a revocation then finds no socket
            log.warning("socket token index not cleaned at disconnect: %s", exc)

    def require_live(self, sid: str, namespace: str) -> TokenSession:
        """The connection's token session; TokenExpired once the access token has expired."""
        session = self.by_sid.get((namespace, sid))
        if session is None:
            raise Unauthorized("This socket is not authenticated; reconnect with a token.")
        if session.expired():
            raise TokenExpired("Your access token has expired: send the `auth` event with a fresh one "
                               f"within {self.app.config['SOCKET_TOKEN_GRACE_SECONDS']} s or be disconnected.")
        return session

    def hand_over(self, sid: str, namespace: str, token: Any) -> TokenSession:
        """Replace the connection's token by a fresh access token of the same user (the `auth` event)."""
        current = self.by_sid.get((namespace, sid))
        if current is None:
            raise Unauthorized("This socket is not authenticated; reconnect with a token.")
        if not isinstance(token, str) or not token.strip():
            raise Unauthorized("Send {token: '<access token>'}.", code="token_missing")
        claims = tokens.decode_checked(token.strip(), "access")
        if int(claims["sub"]) != current.user_id:
            raise Unauthorized("The token belongs to another account.", code="wrong_user")
        session = self._adopt(sid, namespace, claims)
        if self.by_sid.get((namespace, sid)) is not current:  # disconnected (revoked?) while we checked
            self._unindex(sid, namespace, session)
            raise Unauthorized("This socket is no longer connected.")
        self._track(sid, namespace, session)
        if session.jti != current.jti:
            self._unindex(sid, namespace, current)
        return session

    # --- expiry sweep --------------------------------------------------------------------------------------------
    def _track(self, sid: str, namespace: str, session: TokenSession) -> None:
        self.by_sid[(namespace, sid)] = session
        heapq.heappush(self.expiries, (session.expires_at, next(self._tiebreak), namespace, sid, session))
        if len(self.expiries) > 2 * len(self.by_sid) + 1024:
            self._compact()

    def _compact(self) -> None:
        live = {id(session) for session in self.by_sid.values()}
        self.expiries = [entry for entry in self.expiries if id(entry[4]) in live]
        heapq.heapify(self.expiries)

    def ensure_started(self) -> None:
        if not self.started:
            self.started = True
            self.server.start_background_task(self._loop)

    def _loop(self) -> None:
        while socketio.server is self.server and not getattr(current_runtime(self.app), "closing", False):
            self.server.sleep(SWEEP_SECONDS)
            try:
                self.sweep()
            except Exception:
                log.exception("socket token sweep failed (will retry)")

    def sweep(self, now: float | None = None) -> None:
        """Disconnect the connections whose token expired more than the grace period ago."""
        deadline = (now or time.time()) - self.app.config["SOCKET_TOKEN_GRACE_SECONDS"]
        failed = []
        while self.expiries and self.expiries[0][0] <= deadline:
            entry = heapq.heappop(self.expiries)
            _, _, namespace, sid, session = entry
            if self.by_sid.get((namespace, sid)) is not session:
                continue  # closed, or handed over to a newer token (which has an entry of its own)
            log.info("socket disconnected: access token expired", extra={"user_id": session.user_id})
            try:
                end(self.server, sid, namespace, "token_expired")
            except Exception:
                log.exception("expired socket not disconnected (will retry)")
                failed.append(entry)
        for entry in failed:
            heapq.heappush(self.expiries, entry)


def end(server, sid: str, namespace: str, reason: str) -> None:
    """SESSION_REVOKED `{reason}`, then disconnect; on another process, both go over the queue in that order."""
    server.emit(REVOKED_EVENT, {"reason": reason}, to=sid, namespace=namespace)
    server.disconnect(sid, namespace=namespace)


def current_runtime(app: Flask):
    return app.extensions.get("realtime")


def current() -> Sessions:
    return current_app.extensions["socket_sessions"]


def on_tokens_revoked(app: Flask, *, jtis: list[str] = (), family: str | None = None, reason: str = "revoked",
                      **_: Any) -> None:
    """Receiver of `events.tokens_revoked`: every socket using a revoked token (or family), on any process, ends."""
    keys = [_token_key(jti) for jti in jtis] + ([_family_key(family)] if family else [])
    if not keys:
        return
    try:
        pipe = redis_store.client.pipeline(transaction=False)
        for key in keys:
            pipe.smembers(key)
        pipe.delete(*keys)
        *members, _ = pipe.execute()
    except redis.RedisError as exc:
        # The token is on the blocklist already (revocation fails closed before announcing); the socket still
        # stops at its token's expiry.
        log.warning("sockets of a revoked token not disconnected, Redis unavailable: %s", exc)
        return
    server = socketio.server
    for entry in sorted(set().union(*members)):
        sid, _, namespace = entry.partition(" ")
        end(server, sid, namespace or "/", reason)
    if any(members):
        log.info("sockets of revoked tokens disconnected", extra={"sockets": len(set().union(*members)),
                                                                    "reason": reason})


def init_app(app: Flask) -> None:
    """This app's token sessions, subscribed to token revocations (idempotent per app)."""
    app.extensions["socket_sessions"] = Sessions(app)
    events.tokens_revoked.connect(on_tokens_revoked, sender=app)
