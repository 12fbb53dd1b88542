"""What an idle Engine.IO socket holds: one green thread (its reader), instead of three (four under gevent).

python-engineio gives each websocket three green threads for its whole life, and an idle socket spends its life with
all three parked: the WSGI request's reader, a writer task waiting on the socket's queue, and a ping task that sleeps
`ping_interval` between pings (`Socket.schedule_ping`). A parked green thread costs its saved stack, its own page of
Python frames and a few objects: 6-8 KiB each, measured with bench/idle_census.py. Here:

- Pings: one `PingScheduler` task per server. A socket due for a ping joins a FIFO (every socket waits the same
  interval, so the FIFO is in due order); the task sleeps until the head is due and pings what is, doing what the
  library's `_send_ping` did: set `last_ping`, send a PING. Dead clients are still dropped by the library's service
  task (`check_ping_timeout` against `last_ping`) and by the reader's socket timeout.
- gevent: simple-websocket reads each websocket in a thread of its own while the request's green thread waits on an
  event for it; `InlineWebSocket` runs that read loop in the request's green thread instead.
- Writes (realtime.frames): on a plain TCP connection, packets are framed once per broadcast and written by the
  server's flusher task with one non-blocking send per socket; a writer task starts only for what the kernel did not
  take, and ends once it has written the queue. On any other (TLS) a writer starts when a packet is queued and no
  writer runs, and ends after WRITER_LINGER seconds without packets. Either way, what waits goes out in one write: a
  relayed Yjs update is two Engine.IO packets, a burst of cursors many. Only for websocket sessions that start as
  websockets (our browser client and the npm client with `transports: ["websocket", ...]`); a session upgraded from
  long-polling keeps the library's own writer.

python-engineio has no hook for any of these, so `install` wraps the Engine.IO `connect` handler (which runs before
the library's first `schedule_ping` and before the websocket starts) and gives each new socket `LeanSocket`, the
library's class with `schedule_ping`, `send`, `close`, the websocket upgrade and handler overridden. The writer and the
inline reader only under eventlet and gevent (green threads: nothing switches between a failed get and the writer's
exit). tests/unit/test_idle_sockets.py fails if the library code these overrides follow changes (python-engineio's
and simple-websocket's, pinned by source fingerprints); tests/live/test_live_idle_sockets.py checks pings, the drop of
a silent client and delivery through restarted writers under both worker classes.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from typing import Any

from engineio import exceptions, packet
from engineio import socket as eio_socket

from ..extensions import socketio
from . import frames
from .turns import Turn

log = logging.getLogger(__name__)

# Pings sent in one go before the scheduler yields to the hub (a burst of handshakes makes a burst of due pings).
BATCH = 256
# Seconds a writer task waits for more packets before it ends (the next packet starts another).
WRITER_LINGER = 1.0
GREEN_MODES = ("eventlet", "gevent")


class LeanSocket(eio_socket.Socket):
    """python-engineio's socket, pinged by the shared scheduler, with a writer task only while there is writing."""

    scheduler: PingScheduler  # set on the per-server subclass
    _ws: Any = None  # the websocket while this socket's own writer may run on it
    _writer: Any = None  # the running writer task, if any
    _raw: Any = None  # the OS socket under `_ws` when the flusher may write to it (realtime.frames)
    pending: list[bytes] | None = None  # frames for the flusher: only while no writer runs and nothing is queued

    def schedule_ping(self) -> None:
        # As the library's: only once the previous ping was answered (or at the handshake).
        if self.last_ping:
            self.last_ping = None
            self.scheduler.add(self)

    def send(self, pkt: packet.Packet) -> None:
        if self._raw is None or self.closing:
            super().send(pkt)
            self._wake_writer()
            return
        # realtime.frames: framed once for every receiver, written by the server's flusher (or behind the writer)
        if not self.check_ping_timeout():
            return
        if self.pending is not None:
            self.pending.append(frames.frame_of(pkt))
        elif self._writer is None:
            self.pending = [frames.frame_of(pkt)]
            self.scheduler.flusher.add(self)
        else:
            self.queue.put(frames.frame_of(pkt))

    def flush_pending(self) -> None:
        """Write the frames collected for the flusher in one non-blocking send; the writer takes what is left."""
        pending, self.pending = self.pending, None
        if pending is None or self._ws is None:  # queued by `close` meanwhile, or the websocket ended
            return
        data = b"".join(pending)  # a lone frame comes back as it is, not copied
        sent = frames.send_now(self._raw, data)
        if sent < len(data):
            self.queue.put(data[sent:])
            self._wake_writer()

    def _queue_pending(self) -> None:
        pending, self.pending = self.pending, None
        for frame in pending or ():
            self.queue.put(frame)

    def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        # The library's close queues the end-of-stream marker without `send`: wake the writer for it before waiting.
        # Frames still waiting for the flusher go first.
        closing_now = not self.closed and not self.closing
        self._queue_pending()
        super().close(wait=False, abort=abort, reason=reason)
        self._wake_writer()
        if wait and closing_now:
            self.queue.join()

    def _wake_writer(self) -> None:
        if self._ws is not None and self._writer is None:
            self._writer = self.server.start_background_task(self._write)

    def _write(self) -> None:
        """Send what is queued; end once the queue is empty (after WRITER_LINGER idle seconds when it has no flusher
        to fall back on), or for good at the end-of-stream marker."""
        ws, queue = self._ws, self.queue
        empty = self.server.get_queue_empty_exception()
        linger = None if self._raw is not None else WRITER_LINGER
        while True:
            try:
                batch = [queue.get(block=False) if linger is None else queue.get(timeout=linger)]
            except empty:
                if queue.qsize():  # put while the timeout was being delivered
                    continue
                self._writer = None  # no switch since the check: the next put starts a writer
                return
            queue.task_done()
            while batch[-1] is not None:  # whatever else waits goes out in the same turn, as the library's poll
                try:
                    batch.append(queue.get(block=False))
                except empty:
                    break
                queue.task_done()
            try:
                end = batch[-1] is None
                frames.write(ws, b"".join([frames.frame_of(item) for item in (batch[:-1] if end else batch)]))
                if end:
                    raise EOFError
            except Exception:  # the end-of-stream marker, or the connection failed: as the library's writer
                break
        self._ws = self._raw = None
        ws.close()

    def _upgrade_websocket(self, environ: dict[str, Any], start_response: Any) -> Any:
        inline = inline_websocket_class() if self.server.async_mode == "gevent" else None
        if inline is None or self.connected or self.upgraded:
            return super()._upgrade_websocket(environ, start_response)
        # gevent: simple-websocket reads in a thread of its own while this request's green thread waits for it;
        # `InlineWebSocket` reads in this green thread instead (one parked green thread per socket, not two).
        return inline(self._websocket_handler, self.server)(environ, start_response)

    def _websocket_handler(self, ws: Any) -> list:
        if self.connected or self.server.async_mode not in GREEN_MODES or not frames.writable(ws):
            return super()._websocket_handler(ws)  # an upgrade from long-polling: the library's own writer

        def websocket_wait():
            data = ws.wait()
            if data and len(data) > self.server.max_http_buffer_size:
                raise ValueError("packet is too large")
            return data

        for attr in ("_sock", "socket"):  # as the library: a socket timeout of one ping cycle
            if hasattr(ws, attr) and hasattr(getattr(ws, attr), "settimeout"):
                getattr(ws, attr).settimeout(self.server.ping_interval + self.server.ping_timeout)
        self.connected = True
        self.upgraded = True
        self._ws = ws
        self._raw = frames.plain_socket(ws, self.server.async_mode)
        self._wake_writer()  # the OPEN packet is queued already
        # The reader, as the library's, taking turns with the others (realtime.turns); under gevent the same turn
        # covers the frame parsing in InlineWebSocket.wait.
        turn = getattr(ws, "turn", None) or Turn(self.server.sleep)
        while True:
            try:
                p = websocket_wait()
            except Exception as exc:
                if not self.closed:
                    self.server.logger.info('%s: Unexpected error "%s", closing connection', self.sid, str(exc))
                break
            if p is None:  # closed by the client
                break
            try:
                with turn:
                    self.receive(packet.Packet(encoded_packet=p))
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                self.server.logger.info("Receive error -- socket is closed")
                break
            except Exception:
                self.server.logger.exception("Unknown receive error")
                break
        self._queue_pending()
        self.queue.put(None)  # the writer closes the websocket when it reaches this
        self._wake_writer()
        writer = self._writer
        if writer is not None:
            writer.join()
        self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        return []


class PingScheduler:
    """The pings of one python-socketio server's Engine.IO sockets, and the socket class that uses it."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.eio = server.eio
        self.due: deque[tuple[float, Any]] = deque()  # (monotonic due time, socket), in due order
        self.started = False
        self.socket_class = type("LeanSocket", (LeanSocket,), {"scheduler": self})
        self.flusher = frames.Flusher(server.eio)
        self._connect = self.eio.handlers["connect"]

    def install(self) -> PingScheduler:
        self.eio.on("connect", self.on_connect)
        return self

    def on_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        sock = self.eio.sockets.get(eio_sid)
        if type(sock) is eio_socket.Socket:  # exactly the library's: a subclass of someone else's is left alone
            sock.__class__ = self.socket_class
        return self._connect(eio_sid, environ)

    def add(self, sock: Any) -> None:
        self.due.append((time.monotonic() + self.eio.ping_interval, sock))
        if not self.started:
            self.started = True
            self.eio.start_background_task(self._loop)

    def ping_due(self, now: float) -> int:
        """Ping every socket due by `now` (at most BATCH of them); how many were taken off the FIFO."""
        taken = 0
        while self.due and self.due[0][0] <= now and taken < BATCH:
            _, sock = self.due.popleft()
            taken += 1
            if sock.closing or sock.closed:
                continue
            sock.last_ping = time.time()
            try:
                sock.send(packet.Packet(packet.PING))
            except Exception:  # one socket's failure must not stop everyone's pings
                log.exception("ping failed", extra={"eio_sid": sock.sid})
        return taken

    def _loop(self) -> None:
        while socketio.server is self.server:  # a newer app's server (tests) ends this one's loop
            now = time.monotonic()
            if self.ping_due(now) == BATCH:
                self.eio.sleep(0)
                continue
            # Empty: anything added from now on is due a whole interval later.
            self.eio.sleep(self.due[0][0] - now if self.due else self.eio.ping_interval)


def install(server: Any) -> PingScheduler:
    return PingScheduler(server).install()


class EventletInput:
    """WSGI middleware, under gunicorn's eventlet worker: give engine.io the connection as `eventlet.input` ourselves.

    Seeing `gunicorn.socket`, python-engineio's middleware wraps it in an instance of a class it defines anew for each
    request, and the class stays alive (a local of the frame every websocket's green thread parks under): 2.4 KiB per
    idle socket, measured. Given `eventlet.input` and no `gunicorn.socket`, it defines nothing, and eventlet's
    websocket reads `eventlet.input` first. Not under gevent: simple-websocket needs `gunicorn.socket` to tell gunicorn
    that it answered the request itself.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        sock = environ.pop("gunicorn.socket", None)
        if sock is not None:
            environ["eventlet.input"] = _SocketInput(sock)
        return self.app(environ, start_response)


class _SocketInput:
    """eventlet.wsgi's `eventlet.input`, as far as eventlet's websocket uses it."""

    __slots__ = ("socket",)

    def __init__(self, socket: Any) -> None:
        self.socket = socket

    def get_socket(self) -> Any:
        return self.socket


@functools.cache
def inline_websocket_class() -> type | None:
    """engine.io's gevent websocket (simple-websocket) with its reader thread folded into `wait`; built on first use
    (gevent may only be imported in a gevent process). None when engine.io uses gevent-websocket instead."""
    import gevent.event
    import gevent.selectors
    from engineio.async_drivers import gevent as eio_gevent
    from wsproto.utilities import LocalProtocolError

    if eio_gevent.SimpleWebSocketWSGI is None:
        return None

    class _NoThread:
        """The reader thread simple-websocket would start: never started, `wait` reads instead."""

        name = "(simple_websocket.Base._thread)"

        def __init__(self, target: Any = None, **_: Any) -> None:
            pass

        def start(self) -> None:
            pass

    class InlineWebSocket(eio_gevent.WebSocketWSGI):
        """simple-websocket's `Base._thread` loop (without its optional pings, which engine.io does not ask for), run
        by the reader itself in `wait`: read, feed wsproto, handle its events, until a message is complete."""

        def __init__(self, handler: Any, server: Any) -> None:
            # max_message_size: refused (close 1009) once a message's fragments pass engine.io's own limit, before
            # they are buffered; engine.io's gevent driver sets none, so it only looked after buffering all of it.
            eio_gevent.SimpleWebSocketWSGI.__init__(self, handler, server, thread_class=_NoThread,
                                                    event_class=gevent.event.Event,
                                                    selector_class=gevent.selectors.DefaultSelector,
                                                    max_message_size=int(server.max_http_buffer_size))
            self.turn = Turn(socketio.sleep)  # a burst, or a big message in many chunks: see realtime.turns

        def wait(self) -> Any:
            ws = self.ws
            while ws.connected and not ws.input_buffer:
                try:
                    data = ws.sock.recv(ws.receive_bytes)
                    if not data:
                        raise OSError
                    with self.turn:
                        ws.ws.receive_data(data)
                        ws.connected = ws._handle_events()
                except (OSError, LocalProtocolError):
                    ws.connected = False
            if ws.input_buffer:
                return ws.input_buffer.pop(0)
            ws.sock.close()  # as the thread did when the connection ended
            return None

    return InlineWebSocket

