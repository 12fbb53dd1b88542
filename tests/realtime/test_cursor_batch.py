"""A socket lane's waiting cursor moves: their scripts run in one pipelined round trip (`ordered.deferred`) and
their acks go out afterwards, in order, each with its own seq; a failed script answers `service_unavailable` for
its own event only. Real Redis and the app's queue manager; a recording stand-in for python-socketio's server."""

from __future__ import annotations

import json

import pytest
import redis
from lane_server import LaneServer

from workspace.extensions import redis_store
from workspace.realtime import broadcast, ordered
from workspace.realtime.dispatch import Dispatcher

NOT_HANDLED = object()
SIDS = ("e1/", "e2/")


class Server(LaneServer):
    """What the dispatcher calls. `_trigger_event` runs a small cursor handler in the app: the real emit, the
    handler's answer shape (`{ok, seq}`), a refusal for project 0 (answered without a script)."""

    not_handled = NOT_HANDLED

    def __init__(self, app):
        super().__init__("test.cursor_batch")
        self.app = app
        self.acks, self.triggered, self.single = [], [], []

    def _handle_event(self, *args):
        raise AssertionError("the default namespace goes through lanes")

    def _trigger_event(self, event, namespace, sid, payload):
        self.triggered.append(payload["line"])
        if payload["line"] == "boom":
            raise RuntimeError("a handler failed")
        if payload["project_id"] == 0:
            return {"ok": False, "error": {"code": "not_joined"}}
        with self.app.app_context():
            sent = broadcast.emit_to_project(payload["project_id"], event, {"line": payload["line"]}, skip_sid=sid)
        return {"ok": True, "seq": sent["seq"]}

    def _handle_event_internal(self, server, sid, eio_sid, data, namespace, id):
        self.single.append(id)
        self.acks.append((id, self._trigger_event(data[0], namespace, sid, *data[1:])))

    def _send_packet(self, eio_sid, pkt):
        self.acks.append((pkt.id, pkt.data[0]))


def cursor(line, project=1):
    return ["CURSOR_UPDATE", {"project_id": project, "path": "a", "line": line, "column": 0}]


@pytest.fixture
def published(app):
    """The messages published on the app's Socket.IO channel, read after the test's emits."""
    listener = redis.Redis.from_url(app.config["REDIS_URL"]).pubsub()
    listener.subscribe(app.config["SOCKETIO_CHANNEL"])
    assert listener.get_message(timeout=5)["type"] == "subscribe"

    def read():
        out = []
        while (message := listener.get_message(timeout=0.5)) is not None:
            body = json.loads(message["data"])
            # Only this test's emits (its stand-in sids): not the managers' own messages, nor other apps' events.
            if body.get("method") == "emit" and body.get("skip_sid") in SIDS:
                out.append(body["data"][0])
        return out

    yield read
    listener.close()


def test_a_lanes_waiting_cursors_take_contiguous_seqs_and_are_acked_in_order_after_one_round_trip(app, published,
                                                                                                   monkeypatch):
    server = Server(app)
    Dispatcher(server, backlog=64).install()
    round_trips = []
    execute = redis.client.Pipeline.execute
    monkeypatch.setattr(redis.client.Pipeline, "execute",
                        lambda pipe, *a, **k: round_trips.append(len(pipe)) or execute(pipe, *a, **k))
    for n in range(1, 6):
        server._handle_event("e1", "/", n, cursor(n))
    server.run_tasks()
    assert server.single == [] and round_trips == [5]  # handled as one batch: five scripts, one round trip
    assert [id for id, _ in server.acks] == [1, 2, 3, 4, 5]
    seqs = [ack["seq"] for _, ack in server.acks]
    assert all(ack["ok"] for _, ack in server.acks) and seqs == list(range(seqs[0], seqs[0] + 5))
    assert [(m["line"], m["seq"]) for m in published()] == list(zip(range(1, 6), seqs, strict=True))


def test_a_failed_script_answers_service_unavailable_for_its_own_event_only(app, published):
    with app.app_context():
        redis_store.client.set(ordered.seq_key(9), "not a number")  # INCR fails in this project's script alone
    server = Server(app)
    Dispatcher(server, backlog=64).install()
    server._handle_event("e2", "/", 1, ["join", {"project_id": 1, "line": 0}])  # keeps the lane busy
    for n, project in ((2, 1), (3, 9), (4, 0), (5, 1)):
        server._handle_event("e2", "/", n, cursor(n, project))
    server.run_tasks()
    acks = dict(server.acks)
    assert [id for id, _ in server.acks] == [1, 2, 3, 4, 5]
    assert acks[3] == ordered.UNAVAILABLE
    assert acks[4] == {"ok": False, "error": {"code": "not_joined"}}  # answered as the handler said, in its place
    assert acks[2]["ok"] and acks[5]["ok"] and acks[5]["seq"] == acks[2]["seq"] + 1
    assert [m["line"] for m in published()] == [0, 2, 5]


def test_redis_down_answers_every_event_of_the_batch_and_a_raising_handler_gets_no_ack(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    server = Server(app)
    Dispatcher(server, backlog=64).install()
    for n, data in ((1, ["join", {"project_id": 0, "line": 0}]), (2, cursor(2)), (3, cursor("boom")),
                    (4, cursor(4))):
        server._handle_event("e3", "/", n, data)
    server.run_tasks()
    assert server.triggered == [0, 2, "boom", 4]
    assert server.acks[1:] == [(2, ordered.UNAVAILABLE), (4, ordered.UNAVAILABLE)]


def test_only_deferrable_events_wait_in_a_deferred_block(app, published):
    with app.app_context(), ordered.deferred() as scripts:
        kept = broadcast.emit_to_project(5, "FILE_CHANGE", {"path": "p", "version": 1}, skip_sid="e1/")
        moved = broadcast.emit_to_project(5, "CURSOR_UPDATE", {"line": 1}, skip_sid="e1/")
        assert isinstance(kept["seq"], int) and isinstance(moved["seq"], ordered.PendingSeq)
        assert [m["seq"] for m in published()] == [kept["seq"]]  # the cursor is not published yet
        scripts.run()
    assert scripts.settle({"ok": True, "seq": moved["seq"]}) == {"ok": True, "seq": kept["seq"] + 1}
    assert [m["line"] for m in published()] == [1]
