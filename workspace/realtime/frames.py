"""Server → client websocket writes: a packet is framed once for all its receivers, and written to each socket by
one task per server, without a green thread per socket, whenever the kernel takes it at once (as Node's `ws` does).

A broadcast (a relayed Yjs update to a document's 49 other editors, a cursor to a project room) sends the same
Engine.IO packets to many sockets. python-engineio puts them in each socket's queue for a writer green thread of its
own, which wakes, encodes and frames them and writes: a green thread started or switched to, a timer and a write
per receiver. For a websocket session of `idle_sockets.LeanSocket` (a plain TCP connection under eventlet or gevent):

- `frame_of` frames a packet once (RFC 6455, unmasked, with wsproto's frame encoder) and keeps the frame on the
  packet, so every receiver of a broadcast reuses it. No extension changes frames per connection: compression is
  refused (realtime.compression) and nothing else is negotiated.
- A socket with nothing queued keeps its frames in `LeanSocket.pending`, and the server's `Flusher` writes each such
  socket's frames with one non-blocking `send` once the sender yields, or before the message queue publishes what
  was just emitted (`OrderedRedisManager.before_publish`), whichever comes first: a relayed update's header and
  attachment go out in one write, and a burst of broadcasts in few.
- What the kernel does not take at once (a reader that fell behind, a big message) goes to the socket's queue, and
  its writer task writes it with a green `sendall`; later packets queue behind it until that writer ends. So one
  slow client never holds up the others, and each socket's bytes stay in order.
"""

from __future__ import annotations

import _socket
import logging
import sys
from typing import Any

import simple_websocket
from wsproto.frame_protocol import FrameProtocol

log = logging.getLogger(__name__)

# A server's frames carry no mask and, with no extension, depend on nothing but the message: one encoder for all.
_ENCODER = FrameProtocol(client=False, extensions=[])


def frame_of(item: Any) -> bytes:
    """The websocket frame of an Engine.IO packet (kept on the packet for its other receivers). Bytes in a socket's
    queue are frames already (nothing else queues bytes: the library queues packets) and are returned as they are."""
    if isinstance(item, bytes):
        return item
    frame = item.__dict__.get("_ws_frame")
    if frame is None:
        frame = item._ws_frame = bytes(_ENCODER.send_data(item.encode(), fin=True))
    return frame


def writable(ws: Any) -> bool:
    """Whether `write` knows the websocket: eventlet's RFC 6455 one, or simple-websocket in engine.io's wrapper."""
    if isinstance(getattr(ws, "ws", None), simple_websocket.ws.Base):
        return True
    websocket = sys.modules.get("eventlet.websocket")
    return websocket is not None and isinstance(ws, websocket.RFC6455WebSocket)


def write(ws: Any, data: bytes) -> None:
    """Write frames with the websocket's own green `sendall` (eventlet's, under its send lock; or the socket under
    the simple-websocket connection in engine.io's gevent wrapper, which fails as its own `send` when closed)."""
    inner = getattr(ws, "ws", None)
    if not isinstance(inner, simple_websocket.ws.Base):
        ws._send(data)
        return
    if not inner.connected:
        raise OSError("the websocket is closed")  # as engine.io's wrapper turns ConnectionClosed
    inner.sock.sendall(data)


def plain_socket(ws: Any, async_mode: str) -> _socket.socket | None:
    """The non-blocking OS socket under a websocket of eventlet's or of simple-websocket (gevent), when it carries the
    websocket's bytes as they are (plain TCP, not TLS); else None, and the socket's writer task writes everything."""
    if async_mode == "eventlet":
        from eventlet.greenio import GreenSocket

        green = getattr(ws, "socket", None)
        raw = getattr(green, "fd", None) if type(green) is GreenSocket else None
    elif async_mode == "gevent":
        from gevent import socket as gevent_socket

        inner = getattr(ws, "ws", None)
        green = inner.sock if isinstance(inner, simple_websocket.ws.Base) else None
        raw = getattr(green, "_sock", None) if type(green) is gevent_socket.socket else None
    else:
        return None
    # A TLS connection never gets here (eventlet's and gevent's TLS sockets are classes of their own); gevent's raw
    # socket is a subclass of `_socket.socket`, not of `socket.socket`.
    return raw if isinstance(raw, _socket.socket) else None


class Flusher:
    """One task per server: writes the frames each socket collected in `pending`, one non-blocking send a socket."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.sockets: list[Any] = []

    def add(self, sock: Any) -> None:
        """`sock` has frames pending (for the first time since its last flush)."""
        self.sockets.append(sock)
        if len(self.sockets) == 1:
            self.server.start_background_task(self.flush)

    def flush(self) -> None:
        while self.sockets:
            sockets, self.sockets = self.sockets, []
            for sock in sockets:
                try:
                    sock.flush_pending()
                except Exception:  # one socket's failure must not cost the others their frames
                    log.exception("websocket write failed", extra={"eio_sid": getattr(sock, "sid", None)})


def send_now(raw: _socket.socket, data: bytes) -> int:
    """Bytes of `data` the kernel took at once (0 when its buffer is full or the connection failed: the writer's
    green sendall then waits, or finds the failure and ends the session as the library's writer does)."""
    try:
        return raw.send(data)
    except OSError:  # BlockingIOError included
        return 0
