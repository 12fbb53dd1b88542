"""Per-socket lanes in process, with a recording stand-in for python-socketio's server: order, the backlog bound,
cursor coalescing, a document socket's overrun, and events of other namespaces left to the library."""

from __future__ import annotations

from types import SimpleNamespace

from lane_server import LaneServer

from workspace.realtime.dispatch import RATE_LIMITED, Dispatcher

NS = "/yjs|1/notes.md"


class Server(LaneServer):
    """Just what the dispatcher calls; background tasks run when the test says so."""

    def __init__(self, async_handlers=True):
        super().__init__("test.dispatch", is_connected=lambda sid, ns: not sid.startswith("gone"))
        self.async_handlers = async_handlers
        self.handled, self.acks, self.disconnected, self.library = [], [], [], []
        self.eio = SimpleNamespace(disconnect=self.disconnected.append)

    def _handle_event(self, *args):
        self.library.append(args)

    def _handle_event_internal(self, server, sid, eio_sid, data, namespace, id):
        if data[0] == "boom":
            raise RuntimeError("a handler failed")
        self.handled.append((eio_sid, data[0], id))

    def _send_packet(self, eio_sid, pkt):
        self.acks.append((eio_sid, pkt.id, pkt.data[0]))


def cursor(n, project=1):
    return ["CURSOR_UPDATE", {"project_id": project, "path": "a", "line": n, "column": 0}]


def test_a_sockets_events_are_handled_in_order_by_one_task():
    server = Server()
    d = Dispatcher(server, backlog=10).install()
    for n in range(5):
        server._handle_event("e1", "/", n, ["join" if n == 0 else "FILE_CHANGE", {}])
    assert len(server.tasks) == 1  # one task per busy socket, not one per event
    assert server.slept == []  # the default namespace's task waits for what the reader has (cursor batches)
    server.run_tasks()
    assert [h[2] for h in server.handled] == [0, 1, 2, 3, 4]
    assert d.lanes == {}  # the lane goes when empty


def test_past_the_backlog_cursors_coalesce_and_other_events_are_rate_limited():
    server = Server()
    Dispatcher(server, backlog=3).install()
    server._handle_event("e1", "/", 1, ["join", {}])       # first in the lane (its task has not run yet)
    server._handle_event("e1", "/", 2, cursor(1))          # waiting
    server._handle_event("e1", "/", 3, ["FILE_CHANGE", {}])  # waiting: backlog full
    server._handle_event("e1", "/", 4, cursor(2))          # replaces the waiting cursor, which is acked coalesced
    server._handle_event("e1", "/", 5, ["leave", {}])      # refused at once
    assert server.acks == [("e1", 2, {"ok": True, "coalesced": True}), ("e1", 5, RATE_LIMITED)]
    server.run_tasks()
    assert [(h[1], h[2]) for h in server.handled] == [("join", 1), ("CURSOR_UPDATE", 4), ("FILE_CHANGE", 3)]


def test_a_cursor_past_the_backlog_takes_the_place_of_the_last_waiting_one_so_the_latest_is_handled_last():
    server = Server()
    d = Dispatcher(server, backlog=3).install()
    for n in range(3):  # a full lane of cursor moves (its task has not run yet)
        server._handle_event("e1", "/", n, cursor(n))
    server._handle_event("e1", "/", 3, cursor(3))
    assert server.acks == [("e1", 2, {"ok": True, "coalesced": True})]
    assert [data[1]["line"] for _, _, _, data in d.lanes["e1"]] == [0, 1, 3]


def test_a_document_socket_that_overruns_its_lane_loses_its_transport_not_an_update():
    server = Server()
    Dispatcher(server, backlog=2, merge_limit=0).install()  # no merging: every update waits on its own
    server._handle_event("e2", NS, None, ["sync-update", b"\x00"])
    assert server.slept == [0]  # a document's lane task may start before the reader reads on
    server._handle_event("e2", NS, None, ["sync-update", b"\x01"])
    server._handle_event("e2", NS, None, ["sync-update", b"\x02"])
    assert server.disconnected == ["e2"]
    assert server.slept == [0]


def test_other_namespaces_synchronous_servers_and_gone_sockets_are_left_alone():
    server = Server()
    Dispatcher(server, backlog=4).install()
    server._handle_event("e3", "/other", 1, ["x"])
    assert server.library == [("e3", "/other", 1, ["x"])]
    server._handle_event("gone", "/", 1, ["join", {}])
    assert server.tasks == []
    sync = Server(async_handlers=False)
    Dispatcher(sync, backlog=4).install()
    sync._handle_event("e4", "/", 1, ["join", {}])
    assert sync.library == [("e4", "/", 1, ["join", {}])]


def test_a_failing_handler_does_not_strand_the_sockets_later_events():
    server = Server()
    Dispatcher(server, backlog=4).install()
    server._handle_event("e5", "/", 1, ["boom"])
    server._handle_event("e5", "/", 2, ["join", {}])
    server.run_tasks()
    assert [h[2] for h in server.handled] == [2]


def test_a_document_event_its_namespace_calls_needless_is_dropped_before_a_lane_or_task():
    server = Server()
    d = Dispatcher(server, backlog=10).install()
    d.needless = lambda namespace, data: namespace == NS and data[0] == "awareness-update" and data[1] == b"echo"
    server._handle_event("e2", NS, None, ["awareness-update", b"echo"])
    server._handle_event("e1", "/", None, ["awareness-update", b"echo"])  # the default namespace is never asked
    server._handle_event("e2", NS, 7, ["awareness-update", b"echo"])  # nor for an event that asks for an ack
    server._handle_event("e2", NS, None, ["awareness-update", b"news"])
    server.run_tasks()
    assert [(h[0], h[2]) for h in server.handled] == [("e1", None), ("e2", 7), ("e2", None)]
