"""Refuse websocket compression on purpose (PITFALLS: websocket compression).

Browsers always offer permessage-deflate and eventlet's websocket accepts it; then every small broadcast is
compressed once per client, which costs several times the CPU per delivery and about 2.5x the memory per
connection. Neither eventlet nor engine.io can be told to refuse it, so this WSGI middleware removes the offer
(`Sec-WebSocket-Extensions`) from the handshake before engine.io sees it. WEBSOCKET_COMPRESSION=true keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

HEADER = "HTTP_SEC_WEBSOCKET_EXTENSIONS"


class StripWebSocketExtensions:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        environ.pop(HEADER, None)
        return self.app(environ, start_response)
