"""Two fixes to eventlet's websocket server, installed by `wsgi.py` at start-up when the worker runs eventlet.

1. eventlet unmasks every incoming frame byte by byte in pure Python (`RFC6455WebSocket._apply_mask`, about 0.6 s
   of blocked hub per MiB), so one client sending a few large frames stalls every connection of the process.
   `apply_mask` does the same XOR on whole integers, in C, and returns the same bytes for every length and offset.
2. eventlet checks each frame against `max_frame_length` (engine.io passes its `max_http_buffer_size`) but not the
   message they add up to: a client can send any number of continuation frames and have all of them buffered.
   `CappedMessage` refuses a message past the same limit, closing that connection with 1009 (message too big).

gevent's websocket path (simple-websocket / wsproto) already unmasks with integer XOR; its messages are capped by
`realtime/idle_sockets.py`'s InlineWebSocket for websocket-first sessions (engine.io's gevent driver sets no cap on
simple-websocket, so a session upgraded from long-polling is still capped only after buffering).
"""

from __future__ import annotations

from collections.abc import Sequence


def apply_mask(data: bytes, mask: Sequence[int], length: int | None = None, offset: int = 0) -> bytes:
    """XOR `data[:length]` with the 4-byte `mask`, starting `offset` bytes into the mask's cycle."""
    if length is None:
        length = len(data)
    if not length:
        return b""
    chunk = bytes(data[:length])
    key = bytes(mask[(offset + i) % 4] for i in range(4))
    stream = (key * (length // 4 + 1))[:length]
    return (int.from_bytes(chunk, "little") ^ int.from_bytes(stream, "little")).to_bytes(length, "little")


def install() -> None:
    """Patch eventlet's RFC 6455 websocket class in place (idempotent)."""
    from eventlet import websocket  # only under the eventlet worker: importing eventlet under gevent is wrong

    ws = websocket.RFC6455WebSocket
    if getattr(ws, "_workspace_patched", False):
        return
    base = ws.Message

    class CappedMessage(base):
        """A message that refuses to grow past `max_frame_length` over all of its fragments."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.size = 0

        def push(self, data, final=False):
            self.size += len(data)
            if self.size > self.max_frame_length:
                raise websocket.FailedConnectionError(
                    1009, f"Incoming message is above the length limit of {self.max_frame_length} bytes.")
            super().push(data, final=final)

    ws._apply_mask = staticmethod(apply_mask)
    ws.Message = CappedMessage
    ws._workspace_patched = True
