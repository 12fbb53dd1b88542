"""Real-time collaboration over Socket.IO: connection auth, rooms, presence and the events of the contract.

`init_app` binds the module-global Flask-SocketIO object to an app. Each `create_app()` re-binds it and builds a
new python-socketio server, so handlers are registered on that new server every time (Flask-SocketIO's `on`
registers on the current server only, once one exists). Tests: the Socket.IO test client cannot run with a
message queue and always drives the server of the most recently created app, so build socket-test apps last and
with `SOCKETIO_MESSAGE_QUEUE=None` (Redis still holds presence).
"""

from __future__ import annotations

import json
import logging

from flask import Flask

from ..extensions import socketio
from ..observability import metrics
from . import (
    coedit,
    compression,
    connection,
    dispatch,
    gauges,  # noqa: F401 - adds the socket gauges to the shared scrape
    handlers,
    idle_sockets,
    lifecycle,
    sessions,
    subscribers,
    transport,
)
from .ordered import OrderedRedisManager
from .runtime import Runtime


def init_app(app: Flask) -> None:
    queue = app.config.get("SOCKETIO_MESSAGE_QUEUE", app.config["REDIS_URL"])
    # Flask-SocketIO keeps options between init_app calls: a previous app's queue manager must not leak into this
    # app's server when this one runs without a queue.
    socketio.server_options.pop("client_manager", None)
    socketio.server_options.pop("message_queue", None)
    # Our subclass of python-socketio's Redis manager: room events are published through it in seq order, from the
    # web process and the RQ worker alike (each builds its app through here).
    manager = OrderedRedisManager(queue, channel=app.config["SOCKETIO_CHANNEL"]) if queue else None
    app.extensions["realtime_queue"] = manager
    socketio.init_app(
        app,
        **({"client_manager": manager} if manager else {"message_queue": None}),
        cors_allowed_origins=transport.allowed_origins(app),  # unset in production: same origin only
        # Bounded attachments, JSON depth and integer size for every packet (realtime/transport.py).
        serializer=transport.packet_class(app),
        # Their own loggers, so the libraries add no plain-text handler: their lines go out as JSON.
        logger=logging.getLogger("socketio.server"),
        engineio_logger=logging.getLogger("engineio.server"),
        async_mode=app.config["ASYNC_MODE"],
        # A FILE_CHANGE a little over MAX_FILE_BYTES must reach the handler (and get its payload_too_large ack)
        # rather than have engine.io close the connection.
        max_http_buffer_size=app.config["MAX_CONTENT_LENGTH"],
        # Documents are namespaces `/yjs|<project>/<path>` (y-socket.io); the catch-all `*` handlers of
        # `coedit` accept those and refuse any other namespace.
        namespaces="*",
        ping_interval=app.config["SOCKET_PING_INTERVAL_SECONDS"],
        ping_timeout=app.config["SOCKET_PING_TIMEOUT_SECONDS"],
    )
    if manager is not None:
        # Queue messages come from our own processes: the client packets' bounded JSON (which the manager picks up
        # from the packet class) is not needed for them.
        manager.json = json
    app.extensions["socket_lanes"] = dispatch.install(socketio.server, app.config["SOCKET_BACKLOG"],
                                                      app.config["COEDIT_MAX_UPDATE_BYTES"])
    app.extensions["realtime"] = Runtime(app)
    app.extensions["socket_handshakes"] = transport.HandshakeGuard(app)
    # One ping task for all sockets and a writer task only while there is writing (an idle socket's memory).
    app.extensions["socket_pings"] = idle_sockets.install(socketio.server)
    if manager is not None:
        manager.before_publish = app.extensions["socket_pings"].flusher.flush
    subscribers.init_app(app)  # domain events → FILE_CHANGE, MEMBERSHIP_CHANGED, JOB_UPDATE...
    sessions.init_app(app)  # tokens_revoked → SESSION_REVOKED and disconnect; token expiry of open sockets
    socketio.on_event("connect", connection.on_connect)
    socketio.on_event("disconnect", connection.on_disconnect)
    socketio.on_event("auth", metrics.counts_socket_event("auth", connection.on_auth))
    socketio.on_event(transport.REFUSED_EVENT, transport.on_refused)
    for event, handler in handlers.EVENTS.items():
        socketio.on_event(event, metrics.counts_socket_event(event, connection.live_token_required(handler)))
    coedit.init_app(app)  # after the default namespace's handlers: its catch-all `*` handlers only serve documents
    if app.config["ASYNC_MODE"] == "eventlet":
        app.wsgi_app = idle_sockets.EventletInput(app.wsgi_app)
    app.wsgi_app = lifecycle.ClosingGate(app.wsgi_app, app.extensions["realtime"])
    if not app.config["WEBSOCKET_COMPRESSION"]:
        app.wsgi_app = compression.StripWebSocketExtensions(app.wsgi_app)
