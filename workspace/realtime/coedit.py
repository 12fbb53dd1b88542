"""Co-editing transport: y-socket.io's protocol on the namespaces `/yjs|<project_id>/<path>` (docs/coediting.md).

The npm `y-socket.io` client (`SocketIOProvider`) works unchanged. On connect (token in `auth: {token}`, project
member) the server sends `sync-step-1` with its state vector (the client acks with what the server lacks, which
goes through the write path below) and `awareness-update` with the document's current awareness states. Then:
- `sync-step-1` (client → server, state vector) is acked with the update the client is missing;
- `sync-update` (a Yjs update) is size-checked, the caller's role checked, applied and stored by the document
  store, and relayed by the store's `document_changed` signal to the document's other clients on every process;
- `awareness-update` is size- and rate-capped, filtered to the client ids this socket speaks for, and merged with
  the document's other waiting states: once per COEDIT_AWARENESS_TICK one message with each changed client's latest
  state is remembered and relayed to the document (0: each message at once, to the others); when the socket goes,
  its clients' removal is relayed.
Refusals are `yjs-error` `{code, message}`; a socket that keeps sending refused updates is disconnected.

Handlers are registered for the catch-all namespace `*`; python-socketio picks a namespace's own handlers first,
so the default namespace (`/`) keeps its handlers, and any namespace that is not a document is refused here.
Connect and disconnect go through Flask-SocketIO (a request context: the handshake's environ, the token); the four
document events are registered on python-socketio itself and run in an app context only, with the socket's
`Editor` (`_document_event`): Flask-SocketIO's request context cost 0.15 ms of a keystroke's 4 (p50, 2 editors).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Flask, current_app, request
from flask_socketio import ConnectionRefusedError, emit
from sqlalchemy.exc import DBAPIError

from .. import events
from ..documents import store as documents
from ..documents.crdt import EMPTY_UPDATE, InvalidUpdate
from ..errors import ApiError, Forbidden, NotFound, PayloadTooLarge, ServiceUnavailable
from ..extensions import redis_store, socketio
from ..files.paths import validate_path
from ..policy import Action, authorize
from . import awareness, broadcast, sessions, subscribers
from .throttle import TokenBucket

log = logging.getLogger(__name__)

PREFIX = "/yjs|"
# How many Yjs client ids one socket may speak for in awareness (a provider has one).
MAX_CLIENTS_PER_SOCKET = 4


def namespace_of(project_id: int, path: str) -> str:
    return f"{PREFIX}{project_id}/{path}"


def parse_namespace(namespace: str) -> tuple[int, str] | None:
    """(project_id, path) of a document namespace in its canonical spelling, else None."""
    if not namespace or not namespace.startswith(PREFIX):
        return None
    project, _, path = namespace[len(PREFIX):].partition("/")
    if not project.isdigit() or str(int(project)) != project or int(project) < 1:
        return None
    return int(project), path


@dataclass
class Editor:
    """One socket on one document: who (from the token only), where, and its local bookkeeping."""

    user_id: int
    name: str
    project_id: int
    path: str
    namespace: str
    sid: str
    strikes: int = 0
    clients: dict[int, awareness.Entry] = field(default_factory=dict)  # awareness clients it speaks for
    awareness_budget: TokenBucket | None = None

    @property
    def user(self) -> dict[str, Any]:
        return {"id": self.user_id, "name": self.name}


class Coedit:
    """This app's document sockets and its pending (batched) FILE_CHANGE notifications and awareness states."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.editors: dict[str, Editor] = {}
        self.pending_file_changes: dict[tuple[int, str], dict[str, Any]] = {}
        # Per document namespace: the awareness entries to send at its next tick (client id -> latest entry).
        self.pending_awareness: dict[str, dict[int, awareness.Entry]] = {}
        # Per document namespace: when its editors were last told that relays to other processes are lost.
        self.relay_down_told: dict[str, float] = {}
        # Per document namespace with editors here: the latest awareness clock of each client this process knows
        # (see `_speaks_for`), and how many of its sockets are here (the entry goes with the last).
        self.clocks: dict[str, dict[int, int]] = {}
        self.sockets: dict[str, int] = {}

    def echoed(self, namespace: str, data: list) -> bool:
        """An `awareness-update` whose every state this process knows already, at that clock or a newer one: an echo
        (see `_speaks_for`), dropped as it arrives (socket lanes: no task, no app context). Anything else,
        malformed messages included, goes to the handler."""
        clocks = self.clocks.get(namespace)
        if not clocks or len(data) != 2 or data[0] != "awareness-update" or not isinstance(data[1], bytes) \
                or len(data[1]) > self.app.config["COEDIT_MAX_AWARENESS_BYTES"]:
            return False
        try:
            entries = awareness.decode(data[1])
        except awareness.InvalidAwareness:
            return False
        return bool(entries) and all(entry.clock <= clocks.get(entry.client_id, -1) for entry in entries)


def _state() -> Coedit:
    return current_app.extensions["coedit"]


def _error(editor: Editor, code: str, message: str) -> None:
    socketio.emit("yjs-error", {"code": code, "message": message}, to=editor.sid, namespace=editor.namespace)


# --- connect / disconnect --------------------------------------------------------------------------------------
def on_connect(auth: Any = None) -> None:
    where = parse_namespace(request.namespace)
    if where is None:
        raise ConnectionRefusedError("Unknown namespace: documents are /yjs|<project_id>/<path>.",
                                     {"code": "unknown_namespace"})
    project_id, path = where
    if current_app.extensions["realtime"].closing:  # reconnect elsewhere: a dropped transport is retried
        return _retry_later(ServiceUnavailable("This server is shutting down."))
    try:
        validate_path(path)
    except ApiError as exc:
        raise ConnectionRefusedError(exc.message, {"code": exc.code}) from exc
    claims = sessions.authenticate(auth)
    user_id = int(claims["sub"])
    try:
        authorize(project_id, user_id, Action.READ)
        server_state = documents.state_vector(project_id, path)
    except NotFound as exc:
        raise ConnectionRefusedError("Project not found.", {"code": "project_not_found"}) from exc
    except (ServiceUnavailable, DBAPIError, redis.RedisError) as exc:
        return _retry_later(exc)
    except ApiError as exc:
        raise ConnectionRefusedError(exc.message, {"code": exc.code}) from exc
    config = current_app.config
    rate = config["COEDIT_AWARENESS_RATE_PER_SECOND"]
    sessions.current().open(request.sid, request.namespace, claims)  # revocation and expiry, as on `/`
    editor = Editor(user_id=user_id, name=str(claims.get("name") or ""), project_id=project_id, path=path,
                    namespace=request.namespace, sid=request.sid,
                    awareness_budget=TokenBucket(rate=rate, burst=max(1, 2 * rate)))
    state = _state()
    state.editors[request.sid] = editor
    state.sockets[editor.namespace] = state.sockets.get(editor.namespace, 0) + 1
    request.environ.pop("werkzeug.request", None)  # see connection.on_connect: not needed for the socket's life
    _track(editor, request.sid)
    # y-socket.io's server starts the sync: its state vector, acked with what the client has and it lacks.
    emit("sync-step-1", server_state, callback=functools.partial(_client_missing, editor))
    try:
        present = awareness.current(editor.namespace)
    except redis.RedisError:
        present = []
    if present:
        _known(state, editor.namespace, present)
        for message in awareness.messages(present):
            emit("awareness-update", message)


def _known(state: Coedit, namespace: str, entries: list[awareness.Entry]) -> None:
    """Note the clocks of awareness states this process relays or receives (see `_speaks_for`)."""
    clocks = state.clocks.setdefault(namespace, {})
    for entry in entries:
        clocks[entry.client_id] = max(entry.clock, clocks.get(entry.client_id, 0))


def _retry_later(exc: Exception) -> bool:
    """Storage is down at connect: close the transport instead of refusing, because a refused namespace is never
    retried by socket.io-client while a lost transport is, with backoff, until the service is back."""
    log.warning("document connection dropped, storage unavailable: %s", exc)
    eio_sid = socketio.server.manager.eio_sid_from_sid(request.sid, request.namespace)
    if eio_sid:
        socketio.server.eio.disconnect(eio_sid)
    return False


def _client_missing(editor: Editor, update: Any = None, *_: Any) -> None:
    """The client's answer to the server's sync-step-1: its edits the server lacks (offline typing)."""
    if _state().editors.get(editor.sid) is editor:
        _write(editor, update)


def on_disconnect(reason: Any = None) -> None:
    sessions.current().close(request.sid, request.namespace)
    state = _state()
    editor = state.editors.pop(request.sid, None)
    if editor is None:
        return
    _untrack(editor, request.sid)
    pending = state.pending_awareness.get(editor.namespace)
    for client_id in editor.clients if pending else ():
        pending.pop(client_id, None)  # not brought back after its removal below
    state.sockets[editor.namespace] -= 1
    if not state.sockets[editor.namespace]:
        del state.sockets[editor.namespace]
        state.clocks.pop(editor.namespace, None)
    if editor.clients:
        gone = awareness.removal(list(editor.clients.values()))
        if editor.namespace in state.sockets:
            _known(state, editor.namespace, gone)
        try:
            awareness.remember(editor.namespace, gone)
        except redis.RedisError as exc:
            log.warning("awareness of a closed socket not removed from Redis: %s", exc)
        for message in awareness.messages(gone):
            socketio.emit("awareness-update", message, namespace=editor.namespace, skip_sid=request.sid)


# --- events ----------------------------------------------------------------------------------------------------
def _live(editor: Editor) -> bool:
    """Whether the socket's token still holds (else it is told why)."""
    try:
        sessions.current().require_live(editor.sid, editor.namespace)
    except ApiError as exc:
        _error(editor, exc.code, exc.message)
        return False
    return True


def on_sync_step_1(editor: Editor, state_vector: Any = None, *_: Any) -> bytes:
    """Acked with the update the client is missing (EMPTY_UPDATE, plus a yjs-error, when that cannot be given)."""
    if not _live(editor):
        return EMPTY_UPDATE
    if not isinstance(state_vector, bytes):
        _strike(editor, "invalid_update", "sync-step-1 carries a binary state vector.")
        return EMPTY_UPDATE
    try:
        return documents.state_for(editor.project_id, editor.path, state_vector)
    except InvalidUpdate:
        _strike(editor, "invalid_update", "That is not a Yjs state vector.")
    except ServiceUnavailable as exc:
        _error(editor, "unavailable", exc.message)
    return EMPTY_UPDATE


def on_sync_update(editor: Editor, update: Any = None, *_: Any) -> None:
    _write(editor, update)


def _write(editor: Editor, update: Any) -> None:
    """Store an editor's update (sync-update, or its reply to the server's sync-step-1) or say why not."""
    if not _live(editor):
        return
    if not isinstance(update, bytes):
        _strike(editor, "invalid_update", "sync-update carries a binary Yjs update.")
        return
    limit = current_app.config["COEDIT_MAX_UPDATE_BYTES"]
    if len(update) > limit:
        _strike(editor, "too_large", f"The update is {len(update)} bytes; the limit is {limit}.")
        return
    try:
        documents.apply_update(editor.project_id, editor.path, editor.user, update, origin=editor.sid)
    except InvalidUpdate:
        _strike(editor, "invalid_update", "That is not a Yjs update; nothing was stored.")
    except (Forbidden, NotFound):
        _error(editor, "forbidden", "Your role does not allow editing this file; the change was not saved.")
    except PayloadTooLarge as exc:
        _strike(editor, "too_large", exc.message)
    except ServiceUnavailable as exc:
        _unavailable(editor, exc.message)
    except ApiError as exc:
        _error(editor, exc.code, exc.message)


def _unavailable(editor: Editor, message: str) -> None:
    """Storage is down: say so, then drop the transport (not the namespace) so the client's manager reconnects
    with backoff and, once back, the two sync-step-1 exchanges carry over everything typed meanwhile."""
    _error(editor, "unavailable", message)
    eio_sid = socketio.server.manager.eio_sid_from_sid(editor.sid, editor.namespace)
    if eio_sid:
        socketio.server.start_background_task(socketio.server.eio.disconnect, eio_sid)


def _strike(editor: Editor, code: str, message: str) -> None:
    editor.strikes += 1
    _error(editor, code, message)
    if editor.strikes >= current_app.config["COEDIT_MAX_STRIKES"]:
        log.warning("closing document socket of user %s after %d refused messages", editor.user_id, editor.strikes)
        _error(editor, "too_many_errors", "Too many refused messages; disconnected.")
        socketio.server.start_background_task(socketio.server.disconnect, editor.sid, editor.namespace)


def on_awareness_update(editor: Editor, message: Any = None, *_: Any) -> None:
    if not _live(editor):
        return
    limit = current_app.config["COEDIT_MAX_AWARENESS_BYTES"]
    if not isinstance(message, bytes):
        _strike(editor, "invalid_update", "awareness-update carries a binary awareness update.")
        return
    if len(message) > limit:
        _strike(editor, "too_large", f"The awareness update is {len(message)} bytes; the limit is {limit}.")
        return
    try:
        entries = awareness.decode(message)
    except awareness.InvalidAwareness:
        _strike(editor, "invalid_update", "That is not an awareness update.")
        return
    state = _state()
    own = [entry for entry in entries if _speaks_for(editor, entry, state.clocks.get(editor.namespace, {}))]
    if not own or not editor.awareness_budget.take():
        return  # rate-capped: best effort, like cursors; the client's next move carries its state anyway
    for entry in own:
        editor.clients[entry.client_id] = entry
    _known(state, editor.namespace, own)
    tick = current_app.config["COEDIT_AWARENESS_TICK"]
    if tick <= 0:
        return _send_awareness(editor.namespace, own, skip_sid=editor.sid)
    pending = state.pending_awareness.get(editor.namespace)
    if pending is None:
        state.pending_awareness[editor.namespace] = pending = {}
        socketio.start_background_task(_flush_awareness, state, editor.namespace, tick)
    for entry in own:
        known = pending.get(entry.client_id)
        if known is None or entry.clock >= known.clock:  # a client's latest state wins, as in y-protocols
            pending[entry.client_id] = entry


def _speaks_for(editor: Editor, entry: awareness.Entry, clocks: dict[int, int]) -> bool:
    """Whether `entry` is news from a client this socket speaks for: one it spoke for before, at a clock no older than
    it sent then; or a client new to the document: its clock newer than the latest this process knows (`clocks`) and
    than the one remembered in Redis, where every process puts a state before relaying it; up to
    MAX_CLIENTS_PER_SOCKET. A provider re-sends every state it receives from others (its awareness `update` handler
    does not look at their origin), and their removals after a reconnect: those echoes carry clocks the document
    knows already, and are dropped, not relayed again (at 50 editors, 49 per caret move) nor taken for the socket's
    own clients (whose removal it would then send when it leaves)."""
    known = editor.clients.get(entry.client_id)
    if known is not None:
        return entry.clock >= known.clock
    if entry.state == "null" or len(editor.clients) >= MAX_CLIENTS_PER_SOCKET:
        return False
    if entry.clock <= clocks.get(entry.client_id, -1):
        return False
    try:  # newer than this process knows: a client of another process may have moved since
        latest = awareness.remembered_clock(editor.namespace, entry.client_id)
    except redis.RedisError:
        return True  # unknown then: taken as the socket's own, as before Redis remembered states
    if latest is not None:
        clocks[entry.client_id] = max(latest, clocks.get(entry.client_id, 0))
    return latest is None or entry.clock > latest


def _flush_awareness(state: Coedit, namespace: str, tick: float) -> None:
    """One awareness message per document per tick with the latest state of every client that changed, to every
    socket of the document (its senders too: y-protocols ignores a state whose clock it already has)."""
    socketio.sleep(tick)
    entries = list(state.pending_awareness.pop(namespace, {}).values())
    if entries:
        with state.app.app_context():
            _send_awareness(namespace, entries)


def _send_awareness(namespace: str, entries: list[awareness.Entry], skip_sid: str | None = None) -> None:
    try:
        awareness.remember(namespace, entries)
    except redis.RedisError as exc:
        log.warning("awareness not remembered, Redis unavailable: %s", exc)
    for message in awareness.messages(entries):
        socketio.emit("awareness-update", message, namespace=namespace, skip_sid=skip_sid)


def on_auth(editor: Editor, payload: Any = None, *_: Any) -> dict[str, Any]:
    """A fresh access token for this socket (same user), as the default namespace's `auth` event."""
    token = payload.get("token") if isinstance(payload, dict) else None
    try:
        session = sessions.current().hand_over(editor.sid, editor.namespace, token)
    except ApiError as exc:
        return {"ok": False, "error": {"code": exc.code, "message": exc.message}}
    return {"ok": True, "expires_at": session.expires_at_iso}


# --- from the domain: relay updates, batch FILE_CHANGE ---------------------------------------------------------
def relay_update(_sender: Any, *, project_id: int, path: str, update: bytes, origin: Any = None) -> None:
    """A stored update reaches the document's other clients on every process (through the message queue).

    This process's clients get it first; when the queue cannot take it (Redis down), they are told that editors on
    other processes will not see it live: it is stored, and reaches them when those processes resync (`resync`)."""
    skip = origin if isinstance(origin, str) else None
    namespace = namespace_of(project_id, path)
    manager = socketio.server.manager
    lost = getattr(manager, "lost_publishes", 0)
    socketio.emit("sync-update", update, namespace=namespace, skip_sid=skip)
    if getattr(manager, "lost_publishes", 0) == lost:
        return
    log.warning("update of %s not relayed to other processes: the message queue is down", namespace)
    told, now = _sender.extensions["coedit"].relay_down_told, time.monotonic()
    if now - told.get(namespace, -RELAY_DOWN_EVERY) >= RELAY_DOWN_EVERY:  # once in a while, not per keystroke
        told[namespace] = now
        socketio.server.emit("yjs-error", {"code": "unavailable", "message": RELAY_DOWN}, namespace=namespace,
                             ignore_queue=True)


RELAY_DOWN_EVERY = 5.0  # seconds
RELAY_DOWN = ("Live updates between servers are interrupted (Redis unavailable). Your edits are saved; editors on "
              "other servers receive them when the service is back.")


def resync(app: Flask) -> None:
    """The message queue was re-subscribed after losing its subscription: relays published by other processes
    meanwhile never arrived. Each document with editors here is sent to them whole, from the database (Yjs applies
    only what they lack); updates stored from now on are relayed again."""
    state: Coedit = app.extensions["coedit"]
    documents_here = {(editor.project_id, editor.path) for editor in state.editors.values()}
    if documents_here:
        log.warning("message queue re-subscribed: resyncing %d documents from the database", len(documents_here))
    for project_id, path in documents_here:
        with app.app_context():
            try:
                whole = documents.state_for(project_id, path)
            except (ServiceUnavailable, InvalidUpdate) as exc:  # their next reconnect's sync-step-1 carries it
                log.warning("document %s/%s not resynced: %s", project_id, path, exc)
                continue
        socketio.server.emit("sync-update", whole, namespace=namespace_of(project_id, path), ignore_queue=True)


def batch_file_change(sender: Flask, *, project_id: int, path: str, version: int, user: dict,
                      content: str) -> None:
    """Co-edits notify the project room at most once per COEDIT_FILE_CHANGE_INTERVAL per document (per process),
    with the latest version and text."""
    state: Coedit = sender.extensions["coedit"]
    key = (project_id, path)
    first = key not in state.pending_file_changes
    state.pending_file_changes[key] = {"version": version, "user": user, "content": content}
    if first:
        socketio.start_background_task(_flush_file_change, state, key)


def _flush_file_change(state: Coedit, key: tuple[int, str]) -> None:
    socketio.sleep(state.app.config["COEDIT_FILE_CHANGE_INTERVAL"])
    latest = state.pending_file_changes.pop(key, None)
    if latest is None:
        return
    with state.app.app_context():
        try:
            subscribers.file_saved(state.app, project_id=key[0], path=key[1], **latest)
        except Exception:  # a background task has no caller to raise to
            log.exception("batched FILE_CHANGE not sent")


# --- membership: a removed member's document sockets are closed on every process -------------------------------
def _sockets_key(project_id: int) -> str:
    return redis_store.key("coedit", "sockets", project_id)


def _track(editor: Editor, sid: str) -> None:
    try:
        pipe = redis_store.client.pipeline()
        pipe.hset(_sockets_key(editor.project_id), sid, f"{editor.user_id} {editor.namespace}")
        pipe.expire(_sockets_key(editor.project_id), 7 * 24 * 3600)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("document socket not tracked (eviction on removal may miss it): %s", exc)


def _untrack(editor: Editor, sid: str) -> None:
    try:
        redis_store.client.hdel(_sockets_key(editor.project_id), sid)
    except redis.RedisError as exc:
        log.warning("document socket not untracked: %s", exc)


def membership_changed(app: Flask, *, project_id: int, user_id: int, role: str | None, **_: Any) -> None:
    """A removed member's document sockets close; a downgrade needs nothing here (roles are checked per update)."""
    if role is None:
        evict(project_id, user_id)


def project_deleted(app: Flask, *, project_id: int, member_ids: list[int], **_: Any) -> None:
    for user_id in member_ids:
        evict(project_id, user_id)


def evict(project_id: int, user_id: int) -> None:
    """Close every document socket of `user_id` in the project, whichever process holds it."""
    try:
        sockets = redis_store.client.hgetall(_sockets_key(project_id))
    except redis.RedisError as exc:
        log.warning("cannot evict user %s from project %s documents: %s", user_id, project_id, exc)
        return
    server = broadcast._emitter().server
    for sid, value in sockets.items():
        owner, _, namespace = value.partition(" ")
        if owner == str(user_id):
            server.emit("yjs-error", {"code": "forbidden", "message": "You are no longer a member of this project."},
                        to=sid, namespace=namespace)
            server.disconnect(sid, namespace=namespace)


EVENTS = {
    "sync-step-1": on_sync_step_1,
    "sync-update": on_sync_update,
    "awareness-update": on_awareness_update,
    "auth": on_auth,
}


def init_app(app: Flask) -> None:
    app.extensions["coedit"] = state = Coedit(app)
    lanes = app.extensions.get("socket_lanes")
    if lanes is not None:
        lanes.needless = state.echoed
    socketio.on_event("connect", on_connect, namespace="*")
    socketio.on_event("disconnect", on_disconnect, namespace="*")
    for event, handler in EVENTS.items():
        socketio.server.on(event, _document_event(handler), namespace="*")
    events.document_changed.connect(relay_update, sender=app)
    events.document_edited.connect(batch_file_change, sender=app)
    events.membership_changed.connect(membership_changed, sender=app)
    events.project_deleted.connect(project_deleted, sender=app)
    queue = app.extensions.get("realtime_queue")
    if queue is not None:
        queue.on_resubscribed.append(lambda: socketio.start_background_task(resync, app))


def _document_event(handler):
    """The python-socketio handler of a document event: `handler(editor, *args)` in an app context of the socket's
    app. `*` handlers also see events sent on the default namespace that it has no handler for: those, and events of
    a socket that is not (or no longer) an editor here, are not handled (no ack)."""
    server = socketio.server

    def on_event(namespace: str, sid: str, *args: Any) -> Any:
        environ = server.get_environ(sid, namespace)
        app = environ.get("flask.app") if environ else None
        editor = app.extensions["coedit"].editors.get(sid) if app is not None else None
        if editor is None:
            return server.not_handled
        with app.app_context():
            return handler(editor, *args)

    on_event.__name__ = handler.__name__
    return on_event
