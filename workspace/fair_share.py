"""The WSGI layers outside Flask, arranged so that plain HTTP requests pay only for what they use.

Two things cost every request of a green worker more than they should:
- Turns. A green socket's `recv` returns at once, without yielding to the hub, when the next request is already
  waiting; a client that sends its next request while we write the response therefore keeps one connection's green
  thread running request after request while the others starve (measured: `/healthz` p50 0.6 ms but p99 1.8 s at
  64 connections). `YieldBetweenRequests` yields once per request, which turns that into round-robin for the cost of
  one hub switch.
- Socket.IO's layers. Flask-SocketIO and engine.io wrap the whole app (an environ copy and a class definition per
  request, then our shutdown gate and compression stripping); `SplitByPath` sends only `/socket.io` requests through
  them and everything else straight to Flask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


class YieldBetweenRequests:
    """WSGI middleware: `sleep(0)` (the async mode's cooperative yield) before serving each request."""

    def __init__(self, app: WsgiApp, sleep: Callable[[float], Any]) -> None:
        self.app = app
        self.sleep = sleep

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        self.sleep(0)
        return self.app(environ, start_response)


class SplitByPath:
    """WSGI dispatcher: requests under `prefix` go to `matching`, all others to `other` (PATH_INFO untouched)."""

    def __init__(self, prefix: str, matching: WsgiApp, other: WsgiApp) -> None:
        self.prefix = prefix
        self.matching = matching
        self.other = other

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if (environ.get("PATH_INFO") or "").startswith(self.prefix):
            return self.matching(environ, start_response)
        return self.other(environ, start_response)
