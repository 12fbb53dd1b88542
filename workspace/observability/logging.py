"""Logs as one JSON object per line on stderr: level, time, logger, message, and for work done in a request its
request id, user id (when a token was verified), method, route, and — on the access line — status and duration.

Never a secret: views log no bodies or headers, the access line carries the path without its query string, SQL
parameters are hidden (`hide_parameters` in config.py), and as a last guard anything shaped like a JWT is redacted
from every line.
"""

from __future__ import annotations

import logging
import re
import sys
import time

from flask import Flask, Response, g, has_request_context, request
from flask.logging import default_handler
from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from . import request_id

access_log = logging.getLogger("workspace.access")
FIELDS = "%(levelname)s %(name)s %(message)s"
RENAMES = {"levelname": "level", "name": "logger"}
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
# SQLAlchemy logs every statement at INFO: only LOG_LEVEL=DEBUG shows them (their parameters stay hidden anyway).
_SQL_LOGGER = "sqlalchemy.engine"
# Libraries that log through loggers of their own (gunicorn's are made JSON by gunicorn.conf.py's logconfig_dict).
LIBRARY_LOGGERS = ("engineio.server", "socketio.server", "engineio.client", "socketio.client", "werkzeug",
                   "geventwebsocket.handler", "eventlet.wsgi.server", "rq.worker", "flask_limiter")
_CHATTY_LOGGERS = ("engineio.server", "socketio.server")


class JsonFormatter(_BaseJsonFormatter):
    """python-json-logger's formatter with our field names, UTC ISO time, and JWT redaction."""

    def __init__(self) -> None:
        super().__init__(FIELDS, rename_fields=RENAMES, timestamp="time")

    def format(self, record: logging.LogRecord) -> str:
        return _JWT.sub("[redacted-token]", super().format(record))


class RequestContextFilter(logging.Filter):
    """Adds the request's id, user, method and route to every record made while serving it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.request_id = getattr(record, "request_id", None) or request_id.current()
            if getattr(record, "user_id", None) is None:
                record.user_id = current_user_id()
            record.method = getattr(record, "method", None) or request.method
            record.route = getattr(record, "route", None) or route_label()
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (test runners swap it), never to a stale stream."""

    def __init__(self) -> None:
        super().__init__()
        self.workspace_json = True

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def current_user_id() -> int | None:
    """The user id of the verified token in this request, if any (never the client's say-so)."""
    claims = g.get("_jwt_extended_jwt")  # set by flask-jwt-extended once a token is verified
    subject = claims.get("sub") if claims else None
    return int(subject) if isinstance(subject, str) and subject.isdigit() else None


def route_label() -> str:
    """The URL rule (`/api/v1/projects/<int:project_id>`), never the raw path: bounded for metrics and logs."""
    rule = request.url_rule
    return rule.rule if rule is not None else "<unmatched>"


def configure_root(level: str | int = "INFO") -> logging.Handler:
    """Install the JSON handler on the root logger once per process (idempotent) and set the level."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "workspace_json", False)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        handler.addFilter(RequestContextFilter())
        root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    logging.getLogger(_SQL_LOGGER).setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)
    route_library_loggers(root.level)
    return handler


def route_library_loggers(level: int) -> None:
    """Every library's log lines through the root's JSON handler: drop the plain-text handlers libraries attach to
    their own loggers (python-engineio and python-socketio add a StreamHandler unless given a logger), and let the
    records propagate. Their per-packet INFO lines (which would echo connect payloads) only with LOG_LEVEL=DEBUG."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if not getattr(handler, "workspace_json", False):
                logger.removeHandler(handler)
        logger.propagate = True
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if level <= logging.DEBUG else logging.WARNING)


def _log_request(response: Response) -> Response:
    if not access_log.isEnabledFor(logging.INFO):  # LOG_LEVEL=WARNING and above: no access lines to build
        return response
    started = g.get("request_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
    # The path without its query string: a query could carry something secret.
    access_log.info("%s %s %s", request.method, request.path, response.status_code,
                    extra={"status": response.status_code, "duration_ms": duration_ms, "path": request.path})
    return response


class _ErrorsStream:
    """A `wsgi.errors` stream that turns each write into a log record (servers and libraries write raw text there,
    e.g. eventlet's websocket on a socket closed at shutdown), so even those lines come out as JSON."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def write(self, text: str) -> None:
        if text.strip():
            self.logger.warning("%s", text.strip())

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass


class ErrorsToLog:
    """WSGI middleware, outermost: `wsgi.errors` goes to the `wsgi.errors` logger."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app
        self.stream = _ErrorsStream(logging.getLogger("wsgi.errors"))

    def __call__(self, environ, start_response):
        environ["wsgi.errors"] = self.stream
        return self.wsgi_app(environ, start_response)


def wrap_wsgi(app: Flask) -> None:
    """Call last in the factory, so every other middleware (Socket.IO's included) sees the logging stream."""
    app.wsgi_app = ErrorsToLog(app.wsgi_app)


def init_app(app: Flask) -> None:
    configure_root(app.config.get("LOG_LEVEL", "INFO"))
    # Flask's own handler on the "workspace" logger would print every record of ours a second time, as text.
    app.logger.removeHandler(default_handler)
    app.after_request(_log_request)
