"""workspace/realtime/idle_sockets.py in process, over a real Engine.IO polling handshake: the shared ping scheduler
takes over python-engineio's per-socket ping task and pings what is due, once, in order.

These fail if python-engineio changes under the overrides: a socket of another class, a handshake that no longer goes
through `schedule_ping`, a per-socket `_send_ping` task started anyway, or any overridden library method changed (the
fingerprints below: read the new version against idle_sockets.py, then update them)."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import subprocess
import threading
import time
import warnings
from types import SimpleNamespace

import pytest
from engineio import packet
from engineio import socket as eio_socket

from processes import BIN, ROOT
from workspace.extensions import socketio
from workspace.realtime import frames, idle_sockets, turns
from workspace.realtime.ordered import OrderedRedisManager

with warnings.catch_warnings():  # eventlet says it is deprecated on import
    warnings.simplefilter("ignore", DeprecationWarning)
    from eventlet.websocket import RFC6455WebSocket


@pytest.fixture
def eio(app, monkeypatch):
    """The app's Engine.IO server, recording what it starts as background tasks (still starting them)."""
    server = socketio.server.eio
    started = []
    real = server.start_background_task

    def record(target, *args, **kwargs):
        started.append(getattr(target, "__qualname__", repr(target)))
        return real(target, *args, **kwargs)

    monkeypatch.setattr(server, "start_background_task", record)
    server.started_tasks = started
    return server


def handshake(app) -> str:
    response = app.test_client().get("/socket.io/?EIO=4&transport=polling")
    assert response.status_code == 200, response.data
    opened = response.get_data(as_text=True)
    assert opened.startswith("0")
    return json.loads(opened[1:])["sid"]


def test_a_handshake_puts_the_socket_on_the_shared_schedule_without_a_task_of_its_own(app, eio):
    scheduler = app.extensions["socket_pings"]
    sids = [handshake(app) for _ in range(3)]
    for sid in sids:
        assert type(eio.sockets[sid]) is scheduler.socket_class
    assert [sock.sid for _, sock in scheduler.due] == sids
    assert "Socket._send_ping" not in eio.started_tasks
    assert eio.started_tasks.count("PingScheduler._loop") == 1  # one task for all, started by the first


def test_due_sockets_are_pinged_once_in_order_and_rescheduled_when_they_answer(app, eio):
    scheduler = app.extensions["socket_pings"]
    first, second = handshake(app), handshake(app)
    a, b = eio.sockets[first], eio.sockets[second]
    due_a, due_b = (due for due, _ in scheduler.due)
    assert due_a == pytest.approx(time.monotonic() + eio.ping_interval, abs=1)
    assert a.queue.empty() and b.queue.empty()  # the handshake's response took the OPEN packet
    assert scheduler.ping_due(due_a - 0.001) == 0 and a.queue.empty()
    before = time.time()
    assert scheduler.ping_due(due_a) == 1
    assert [p.packet_type for p in a.poll()] == [packet.PING] and a.last_ping >= before
    assert b.queue.empty() and b.last_ping is None
    assert scheduler.ping_due(due_b) == 1 and b.queue.qsize() == 1
    assert not scheduler.due
    b.receive(packet.Packet(packet.PONG))  # answered: on the schedule again, one interval later
    assert [sock for _, sock in scheduler.due] == [b] and b.last_ping is None
    b.receive(packet.Packet(packet.PONG))  # a second PONG for the same ping schedules nothing more
    assert len(scheduler.due) == 1


def test_a_closed_socket_is_not_pinged(app, eio):
    scheduler = app.extensions["socket_pings"]
    sock = eio.sockets[handshake(app)]
    sock.close(wait=False, abort=True)
    sock.queue.get(block=False)  # the close's end-of-queue marker
    assert scheduler.ping_due(time.monotonic() + eio.ping_interval + 1) == 1
    assert sock.queue.empty()


def test_the_library_socket_still_pings_the_way_the_override_reproduces():
    """What `SharedPingSocket.schedule_ping` stands in for: the library's `schedule_ping` starts `_send_ping` only
    when `last_ping` is set (clearing it), and `_send_ping` sleeps `ping_interval`, sets `last_ping` and sends a
    PING. If this changes, idle_sockets.py must follow."""
    import queue

    class Server:
        ping_interval, ping_timeout = 25, 20
        logger = logging.getLogger(__name__)
        slept: list[float] = []
        tasks: list = []

        def create_queue(self):
            return queue.Queue()

        def start_background_task(self, target, *args):
            self.tasks.append(target)

        def sleep(self, seconds):
            self.slept.append(seconds)

    server = Server()
    sock = eio_socket.Socket(server, "sid")
    assert sock.last_ping  # set at creation: the handshake's schedule_ping starts the first wait
    sock.schedule_ping()
    assert sock.last_ping is None and [t.__name__ for t in server.tasks] == ["_send_ping"]
    sock.schedule_ping()  # no second task while a ping is pending
    assert len(server.tasks) == 1
    before = time.time()
    server.tasks[0]()
    assert server.slept == [25] and sock.last_ping >= before
    assert sock.queue.get(block=False).packet_type == packet.PING


# sha256 (first 16 hex digits) of python-engineio 4.15.1's source of each Socket method idle_sockets.py overrides or
# reproduces: LeanSocket copies the websocket handler's reader and the writer's batching, and relies on `send` being
# the only way packets are queued besides `close` and the handler's end-of-stream marker.
LIBRARY_METHODS = {
    "schedule_ping": "fe316639159cd70d",
    "_send_ping": "21861287bd38dedc",
    "send": "f8b2738ee5d48ab2",
    "close": "05fac55831999f25",
    "_websocket_handler": "58afe122719282de",
    "poll": "d7d705066fd3b948",
    "_upgrade_websocket": "02f6ac05441609d3",
}
# simple-websocket 1.1.0's reader thread and receive, which InlineWebSocket (gevent) runs in the reader instead.
SIMPLE_WEBSOCKET_METHODS = {"_thread": "da9a912028a48435", "receive": "c7165a4fb69e05a6"}


@pytest.mark.parametrize("name", sorted(LIBRARY_METHODS))
def test_the_library_methods_the_overrides_follow_are_unchanged(name):
    source = inspect.getsource(getattr(eio_socket.Socket, name))
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == LIBRARY_METHODS[name], (
        f"python-engineio's Socket.{name} changed: check workspace/realtime/idle_sockets.py against it")


def test_under_eventlet_engineio_gets_the_connection_as_eventlet_input_and_no_gunicorn_socket():
    seen = {}
    layer = idle_sockets.EventletInput(lambda environ, start_response: seen.update(environ) or [])
    sock = object()
    layer({"gunicorn.socket": sock, "PATH_INFO": "/socket.io/"}, None)
    assert "gunicorn.socket" not in seen and seen["eventlet.input"].get_socket() is sock
    seen.clear()
    layer({"PATH_INFO": "/socket.io/"}, None)  # not under gunicorn: nothing to hand over
    assert "eventlet.input" not in seen


def test_the_gevent_web_process_does_not_record_each_greenlets_spawning_stack(tmp_path):
    """gevent keeps, per greenlet, the stack that spawned it: about 5 KiB per idle socket (wsgi.py turns it off)."""
    done = subprocess.run([str(BIN / "python"), "-c", "import wsgi, gevent; print(gevent.config.track_greenlet_tree)"],
                          cwd=ROOT, env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
                                         "ASYNC_MODE": "gevent", "APP_ENV": "testing"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("name", sorted(SIMPLE_WEBSOCKET_METHODS))
def test_the_simple_websocket_methods_the_inline_reader_follows_are_unchanged(name):
    from simple_websocket import ws

    source = inspect.getsource(getattr(ws.Base, name))
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == SIMPLE_WEBSOCKET_METHODS[name], (
        f"simple-websocket's Base.{name} changed: check InlineWebSocket in workspace/realtime/idle_sockets.py")


class FakeWebSocket(RFC6455WebSocket):
    """eventlet's websocket (what `frames.writable` knows) as engine.io's driver gives it, on no connection: `wait`
    returns the client's next message (None once it closed), `_send` records what is written, `close` ends it;
    `_sock` takes the read timeout."""

    def __init__(self, incoming=()):
        import queue

        self.incoming = queue.Queue()
        for message in incoming:
            self.incoming.put(message)
        self.written = b""
        self.wrote = threading.Event()
        self.closed = threading.Event()
        self.timeout = None
        self._sock = self

    def settimeout(self, seconds):
        self.timeout = seconds

    def wait(self):
        return self.incoming.get(timeout=10)

    def _send(self, frame):
        if self.closed.is_set():
            raise OSError("closed")
        self.written += frame
        self.wrote.set()

    def close(self):
        self.closed.set()

    def has(self, *messages) -> bool:
        """Whether exactly these Engine.IO packets' frames were written, in this order."""
        return self.written == b"".join(frames.frame_of(packet.Packet(encoded_packet=m)) for m in messages)


@pytest.fixture
def lean_socket(app, monkeypatch):
    """A LeanSocket of the app's server (threading here: the same code as under the green workers, which is what
    GREEN_MODES admits), registered like a handshake's, with a short writer linger."""
    monkeypatch.setattr(idle_sockets, "WRITER_LINGER", 0.05)
    monkeypatch.setattr(idle_sockets, "GREEN_MODES", (*idle_sockets.GREEN_MODES, socketio.server.eio.async_mode))
    eio = socketio.server.eio
    sock = app.extensions["socket_pings"].socket_class(eio, "lean-test-sid")
    eio.sockets[sock.sid] = sock
    yield sock
    eio.sockets.pop(sock.sid, None)


def wait_for(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_writer_runs_only_while_there_is_writing_and_a_new_packet_starts_another(lean_socket):
    """A websocket the flusher may not write to (TLS: no plain socket under it) has the writer task of old."""
    ws = FakeWebSocket()
    lean_socket.send(packet.Packet(packet.MESSAGE, data="before the websocket"))
    assert lean_socket._writer is None  # no websocket yet: nothing to write on, the packet waits in the queue
    lean_socket._ws = ws
    lean_socket.send(packet.Packet(packet.MESSAGE, data="first"))
    first = lean_socket._writer
    assert first is not None and lean_socket.pending is None
    wait_for(lambda: ws.has("4before the websocket", "4first"))  # queued ones first, in order, in one write
    wait_for(lambda: lean_socket._writer is None)  # idle past the linger: the writer ended
    first.join(timeout=5)
    lean_socket.send(packet.Packet(packet.MESSAGE, data="second"))
    assert lean_socket._writer is not None and lean_socket._writer is not first
    wait_for(lambda: ws.has("4before the websocket", "4first", "4second"))
    assert not ws.closed.is_set()


def test_the_end_of_stream_marker_closes_the_websocket_and_a_failed_write_ends_the_writer(lean_socket):
    ws = FakeWebSocket()
    lean_socket._ws = ws
    lean_socket.queue.put(None)
    lean_socket._wake_writer()
    wait_for(ws.closed.is_set)
    wait_for(lambda: lean_socket._ws is None)
    assert ws.written == b""
    broken = FakeWebSocket()
    broken.closed.set()  # every send fails
    lean_socket._ws = broken
    lean_socket._writer = None
    lean_socket.send(packet.Packet(packet.MESSAGE, data="lost"))
    wait_for(lambda: lean_socket._ws is None)  # as the library's writer: a failed write ends it


def test_the_websocket_reader_answers_pongs_writes_the_queue_and_closes_when_the_client_goes(lean_socket, app):
    scheduler = app.extensions["socket_pings"]
    opened = packet.Packet(packet.OPEN, data={"sid": lean_socket.sid})
    lean_socket.send(opened)  # as the handshake queues it
    ws = FakeWebSocket(["3", "9unknown packet type", None])  # a PONG, a packet to ignore, the client closing
    assert lean_socket._websocket_handler(ws) == []
    eio = socketio.server.eio
    assert ws.timeout == eio.ping_interval + eio.ping_timeout
    assert ws.written.startswith(frames.frame_of(opened))
    assert ws.closed.is_set() and lean_socket.closed
    assert ws.incoming.empty()  # read to the client's close: the unknown packet was skipped, not fatal
    assert [sock for _, sock in scheduler.due] == [lean_socket]  # the PONG put it back on the ping schedule


class Kernel:
    """The OS socket under a websocket, as the flusher writes to it: its send buffer has `room` bytes left."""

    def __init__(self, room: int = 1 << 30) -> None:
        self.room = room
        self.sends: list[bytes] = []

    def send(self, data: bytes) -> int:
        if not self.room:
            raise BlockingIOError
        taken = bytes(data[:self.room])
        self.room -= len(taken)
        self.sends.append(taken)
        return len(taken)


def start_later(target, *args) -> threading.Timer:
    task = threading.Timer(0.01, target, args)
    task.daemon = True
    task.start()
    return task


@pytest.fixture
def plain(lean_socket, monkeypatch):
    """`lean_socket` on a websocket with a plain socket under it (`Kernel`): its frames go through the flusher, whose
    task the test runs (`flusher.flush()`) where the hub would, once the sender yields. `flusher.started` counts the
    tasks it asked for."""
    lean_socket._ws = FakeWebSocket()
    lean_socket._raw = Kernel()
    # A task starts once its starter has gone on, as a green one does (a writer that writes the queue and ends at once
    # must not end before `_wake_writer` has noted it).
    eio = socketio.server.eio
    monkeypatch.setattr(eio, "start_background_task", lambda target, *args: start_later(target, *args))
    flusher = lean_socket.scheduler.flusher
    flusher.started = []
    monkeypatch.setattr(flusher, "server", SimpleNamespace(start_background_task=flusher.started.append))
    return lean_socket


def test_a_broadcast_is_framed_once_and_each_socket_gets_its_frames_in_one_send_without_a_writer(plain, app):
    other = app.extensions["socket_pings"].socket_class(socketio.server.eio, "lean-test-other")
    other._ws, other._raw = FakeWebSocket(), Kernel()
    flusher = plain.scheduler.flusher
    # A relayed Yjs update: its header and its binary attachment, to two receivers, as the manager's emit sends them.
    header = packet.Packet(packet.MESSAGE, data='51-/yjs|1/a.md,["sync-update",{"_placeholder":true,"num":0}]')
    attachment = packet.Packet(packet.MESSAGE, data=bytes(range(200)))
    for sock in (plain, other):
        for pkt in (header, attachment):
            sock.send(pkt)
    assert plain.pending[0] is other.pending[0]  # framed once
    assert flusher.started == [flusher.flush] and plain._raw.sends == []  # one task for both, not run yet
    flusher.flush()
    both = frames.frame_of(header) + frames.frame_of(attachment)
    assert plain._raw.sends == other._raw.sends == [both]
    assert plain._writer is other._writer is None and plain.queue.empty() and plain.pending is None
    plain.send(header)
    assert len(flusher.started) == 2  # the next send asks for the task again


def test_what_the_kernel_does_not_take_goes_to_the_writer_and_what_follows_stays_in_order(plain):
    plain._raw.room = 10
    messages = [f"4message {i} " + "x" * 100 for i in range(5)]
    plain.send(packet.Packet(encoded_packet=messages[0]))
    plain.scheduler.flusher.flush()
    assert plain._writer is not None
    for message in messages[1:]:  # behind the writer (or, once it ended, to a full kernel buffer: to it again)
        plain.send(packet.Packet(encoded_packet=message))
    plain.scheduler.flusher.flush()
    expected = b"".join(frames.frame_of(packet.Packet(encoded_packet=m)) for m in messages)
    wait_for(lambda: len(plain._raw.sends[0]) + len(plain._ws.written) == len(expected))
    assert plain._raw.sends == [expected[:10]] and plain._ws.written == expected[10:]
    wait_for(lambda: plain._writer is None)  # no linger: the flusher writes again once the queue is written


def test_a_socket_closed_with_frames_waiting_for_the_flusher_writes_them_before_its_close_packet(plain):
    ws, kernel = plain._ws, plain._raw
    plain.send(packet.Packet(packet.MESSAGE, data="last words"))
    plain.close(wait=False)
    wait_for(ws.closed.is_set)
    assert ws.has("4last words", "1")
    plain.scheduler.flusher.flush()  # its turn comes after the close: nothing left for it
    assert kernel.sends == []


def test_a_message_over_the_buffer_limit_closes_the_socket(lean_socket):
    limit = int(socketio.server.eio.max_http_buffer_size)
    ws = FakeWebSocket(["4" + "x" * limit, "4never read"])
    assert lean_socket._websocket_handler(ws) == []
    assert ws.closed.is_set() and lean_socket.closed
    assert ws.incoming.qsize() == 1  # the reader stopped at the oversized message


@pytest.mark.parametrize(("slice_seconds", "yields"), [(0.0, 3), (60.0, 0)])
def test_the_reader_yields_to_the_hub_between_waiting_messages_once_its_turn_is_spent(
        lean_socket, monkeypatch, slice_seconds, yields):
    """A client's burst is handled in turns (realtime.turns): with a slice of 0 every message ends one, with a long
    slice none does."""
    eio = socketio.server.eio
    pauses = []
    monkeypatch.setattr(turns, "SLICE", slice_seconds)
    sleep = eio.sleep  # the app's background loops sleep through it too: theirs go on as before
    monkeypatch.setattr(eio, "sleep",
                        lambda seconds: pauses.append(seconds) if seconds == turns.PAUSE else sleep(seconds))
    ws = FakeWebSocket(["3", "3", "3", None])  # three PONGs already waiting, then the client closes
    assert lean_socket._websocket_handler(ws) == []
    assert pauses == [turns.PAUSE] * yields



class Wire:
    """The socket under a websocket library: what each `send`/`sendall` wrote."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)


# A relayed Yjs update's text header and its binary attachment (over 64 KiB: an 8-byte length), then a PING.
BATCH = [packet.Packet(packet.MESSAGE, data='51-/yjs|1/a.md,["sync-update",{"_placeholder":true,"num":0}]'),
         packet.Packet(packet.MESSAGE, data=bytes(range(256)) * 300), packet.Packet(packet.PING)]


def written_by(make_ws, write) -> list[bytes]:
    wire = Wire()
    ws = make_ws(wire)
    before = len(wire.writes)  # a handshake's answer, if the library writes one
    write(ws)
    return wire.writes[before:]


def assert_one_write_of_the_same_frames(make_ws) -> None:
    """Frames from `frames.frame_of`, written with `frames.write`, are exactly what the library's own `send` of each
    message writes, in one write."""
    one_by_one = written_by(make_ws, lambda ws: [ws.send(pkt.encode()) for pkt in BATCH])
    together = written_by(make_ws, lambda ws: frames.write(ws, b"".join(frames.frame_of(pkt) for pkt in BATCH)))
    assert len(one_by_one) == 3 and len(together) == 1
    assert together[0] == b"".join(one_by_one)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_frames_are_eventlets_websocket_frames():
    from eventlet import websocket

    assert_one_write_of_the_same_frames(lambda wire: websocket.RFC6455WebSocket(wire, {}, 13))
    assert frames.writable(websocket.RFC6455WebSocket(Wire(), {}, 13))


class NoThread:
    name = "(simple_websocket.Base._thread)"

    def __init__(self, target=None, **_) -> None:
        pass

    def start(self) -> None:
        pass


def simple_websocket_under_engineio(wire: Wire):
    """engine.io's gevent wrapper around a simple-websocket server connection on `wire` (handshake done)."""
    import simple_websocket
    from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI

    environ = {"gunicorn.socket": wire, "HTTP_HOST": "x", "HTTP_CONNECTION": "Upgrade", "HTTP_UPGRADE": "websocket",
               "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==", "HTTP_SEC_WEBSOCKET_VERSION": "13"}
    ws = SimpleWebSocketWSGI(None, None, thread_class=NoThread)
    ws.ws = simple_websocket.Server(environ, thread_class=NoThread)
    return ws


def test_frames_are_simple_websockets_frames_and_a_closed_one_fails_as_its_own_send_does():
    assert_one_write_of_the_same_frames(simple_websocket_under_engineio)
    ws = simple_websocket_under_engineio(Wire())
    assert frames.writable(ws)
    ws.ws.connected = False
    with pytest.raises(OSError):
        ws.send("4x")
    with pytest.raises(OSError):
        frames.write(ws, frames.frame_of(BATCH[0]))


def test_other_websockets_are_left_to_the_library():
    assert not frames.writable(SimpleNamespace(send=print))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_flusher_writes_only_to_the_plain_socket_under_a_green_websocket():
    import socket

    import gevent.socket
    from eventlet import websocket
    from eventlet.greenio import GreenSocket

    ends = socket.socketpair()
    try:
        green = GreenSocket(ends[0])
        assert frames.plain_socket(websocket.RFC6455WebSocket(green, {}, 13), "eventlet") is green.fd
        assert frames.plain_socket(websocket.RFC6455WebSocket(ends[0], {}, 13), "eventlet") is None  # not green
        ws = simple_websocket_under_engineio(Wire())
        ws.ws.sock = gevent.socket.socket(fileno=ends[1].detach())
        assert frames.plain_socket(ws, "gevent") is ws.ws.sock._sock
        assert frames.plain_socket(ws, "threading") is None
        ws.ws.sock.close()
    finally:
        ends[0].close()


def test_a_web_process_flushes_its_frames_before_each_publish(make_app):
    from services import REDIS_URL

    app = make_app(SOCKETIO_MESSAGE_QUEUE=REDIS_URL)
    assert app.extensions["realtime_queue"].before_publish == app.extensions["socket_pings"].flusher.flush


def test_an_emits_local_receivers_get_their_frames_before_it_is_published_to_other_processes(plain, monkeypatch):
    from services import REDIS_URL

    manager = OrderedRedisManager(REDIS_URL, channel="unused")
    manager.before_publish = plain.scheduler.flusher.flush
    written_when_published = []
    monkeypatch.setattr(type(manager).__mro__[1], "_publish",  # python-socketio's RedisManager: no Redis write here
                        lambda self, data: written_when_published.append(list(plain._raw.sends)) or 1)
    plain.send(packet.Packet(packet.MESSAGE, data="relayed"))  # as the manager's local emit does, then it publishes
    manager._publish({"method": "emit"})
    assert written_when_published == [[frames.frame_of(packet.Packet(packet.MESSAGE, data="relayed"))]]
