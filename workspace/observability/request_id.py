"""`X-Request-ID`: the caller's (or the proxy's) id when it is sane, a fresh one otherwise; echoed on every response.

The id lives on `flask.g` for the request, so log records and error reports can carry it (see `current()`), beside
the request's start time (`g.request_started`, for the access log and the latency histogram).
"""

from __future__ import annotations

import os
import re
import time

from flask import Flask, Response, g, has_request_context, request

HEADER = "X-Request-ID"
# Printable, no spaces or quotes, bounded: safe to log and to echo in a header, impossible to use for log injection.
_SANE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


def current() -> str | None:
    """The id of the request being served, or None outside a request."""
    if not has_request_context():
        return None
    return g.get("request_id")


def accept_or_generate(value: str | None) -> str:
    """The given id when it is sane, else a new random one."""
    if value and _SANE.match(value):
        return value
    return os.urandom(16).hex()  # 32 random hex digits, as uuid4().hex, without building a UUID object


def _assign() -> None:
    g.request_started = time.perf_counter()
    g.request_id = accept_or_generate(request.environ.get("HTTP_X_REQUEST_ID"))  # the header, without Headers' scan


def _echo(response: Response) -> Response:
    response.headers[HEADER] = current() or accept_or_generate(None)
    return response


def init_app(app: Flask) -> None:
    # First of all before_request hooks: a limiter refusal or a 415 still carries the id.
    app.before_request_funcs.setdefault(None, []).insert(0, _assign)
    app.after_request(_echo)
