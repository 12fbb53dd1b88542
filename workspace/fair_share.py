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

import inspect
import types
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


def flatten(app: WsgiApp) -> WsgiApp:
    """Call each of our WSGI layers' inner app through its bound `__call__` rather than through the instance.

    Calling an instance of a Python class recurses into a new C-level interpreter loop (about 0.8 KiB of C stack,
    measured); calling a bound method of a Python function runs in the caller's loop. A websocket's green thread stays
    parked under this chain for the socket's life, with its C stack saved on the heap: one level per layer, for every
    idle socket. Walks the layers defined in this package (`app`, `wsgi_app`, `matching`, `other`) and rebinds those
    attributes in place; returns `app`.
    """
    seen: set[int] = set()
    stack = [app]
    while stack:
        layer = stack.pop()
        if id(layer) in seen or not type(layer).__module__.startswith(__name__.partition(".")[0] + "."):
            continue
        seen.add(id(layer))
        for attr in ("app", "wsgi_app", "matching", "other"):
            inner = vars(layer).get(attr) if hasattr(layer, "__dict__") else None
            if inner is None:
                continue
            stack.append(inner)
            if isinstance(inspect.getattr_static(type(inner), "__call__", None), types.FunctionType):
                setattr(layer, attr, inner.__call__)
    return app
