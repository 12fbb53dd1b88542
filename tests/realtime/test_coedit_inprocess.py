"""The co-editing namespace in process (Flask-SocketIO's test client; the live suite drives the npm client):
sync, updates by role, refusals, awareness relay and removal, the `auth` hand-over, refused namespaces."""

from __future__ import annotations

import pytest
from pycrdt import Text
from realtime_inprocess import events, sio_app, sio_http, sio_team  # noqa: F401 - fixtures
from teams import project_url

from workspace.documents import crdt
from workspace.errors import ServiceUnavailable
from workspace.extensions import socketio
from workspace.realtime import awareness, coedit

PATH = "doc.txt"


@pytest.fixture
def doc_connect(sio_app, sio_team):  # noqa: F811 - fixture
    clients = []

    def factory(user, path=PATH, project_id=None):
        namespace = f"/yjs|{project_id or sio_team.project_id}/{path}"
        sio = socketio.test_client(sio_app, namespace=namespace, auth={"token": user.access})
        sio.ns = namespace
        clients.append(sio)
        return sio

    yield factory
    for sio in clients:
        if sio.is_connected(sio.ns):
            sio.disconnect(sio.ns)


def received(sio, name):
    return [e["args"][0] for e in sio.get_received(sio.ns) if e["name"] == name]


def typed(text: str, doc=None) -> bytes:
    doc = doc or crdt.new_doc()
    updates = []
    doc.observe(lambda event: updates.append(event.update))
    t = doc.get(crdt.TEXT_NAME, type=Text)
    t.insert(len(t), text)
    return updates[-1]


def test_sync_updates_by_role_and_the_rest_view(doc_connect, sio_team, sio_http):  # noqa: F811
    owner, viewer = doc_connect(sio_team.owner), doc_connect(sio_team.viewer)
    assert received(owner, "sync-step-1")  # the server starts the sync with its state vector
    owner.emit("sync-update", typed("hello"), namespace=owner.ns)
    assert received(viewer, "sync-update")  # relayed to the other editor, not echoed
    assert not received(owner, "sync-update")
    viewer.emit("sync-update", typed("nope"), namespace=viewer.ns)
    assert [e["code"] for e in received(viewer, "yjs-error")] == ["forbidden"]
    missing = viewer.emit("sync-step-1", crdt.EMPTY_UPDATE, namespace=viewer.ns, callback=True)
    doc = crdt.new_doc()
    crdt.apply(doc, missing)
    assert crdt.text_of(doc) == "hello"
    body = sio_http.get(project_url(sio_team.project_id, "files", PATH), headers=sio_team.viewer.headers).json
    assert body["content"] == "hello"


def test_bad_messages_are_refused_then_the_socket_is_closed(doc_connect, sio_team, sio_app):  # noqa: F811
    sio_app.config.update(COEDIT_MAX_UPDATE_BYTES=64, COEDIT_MAX_STRIKES=4)
    owner = doc_connect(sio_team.owner)
    owner.emit("sync-update", b"\xff\xff\xff", namespace=owner.ns)
    owner.emit("sync-update", b"\x00" * 100, namespace=owner.ns)
    owner.emit("sync-update", "not bytes", namespace=owner.ns)
    assert [e["code"] for e in received(owner, "yjs-error")] == ["invalid_update", "too_large", "invalid_update"]
    assert owner.emit("sync-step-1", b"\xff\xff", namespace=owner.ns, callback=True) == crdt.EMPTY_UPDATE
    assert not owner.is_connected(owner.ns)  # the fourth refusal closed it
    last = [p["args"][0]["code"] for p in owner.queue if p["namespace"] == owner.ns and p["name"] == "yjs-error"]
    assert last == ["invalid_update", "too_many_errors"]


def test_awareness_is_relayed_filtered_and_removed_at_disconnect(doc_connect, sio_team, sio_app):  # noqa: F811
    sio_app.config["COEDIT_AWARENESS_TICK"] = 0  # each message relayed at once
    alice, bob = doc_connect(sio_team.owner), doc_connect(sio_team.collaborator)
    mine = awareness.Entry(client_id=11, clock=1, state='{"user":{"name":"Alice"}}')
    alice.emit("awareness-update", awareness.encode([mine]), namespace=alice.ns)
    assert awareness.decode(received(bob, "awareness-update")[-1]) == [mine]
    # Removing someone else's client (y-socket.io's client does after a reconnect) is not relayed.
    alice.emit("awareness-update", awareness.encode([awareness.Entry(99, 5, "null")]), namespace=alice.ns)
    alice.emit("awareness-update", b"\x05\x01", namespace=alice.ns)
    assert [e["code"] for e in received(alice, "yjs-error")] == ["invalid_update"]
    assert not received(bob, "awareness-update")
    carol = doc_connect(sio_team.viewer)  # a newcomer is given the current states at connect
    assert awareness.decode(received(carol, "awareness-update")[-1]) == [mine]
    alice.disconnect(alice.ns)
    assert awareness.decode(received(bob, "awareness-update")[-1]) == [awareness.Entry(11, 2, "null")]


def test_echoed_awareness_states_are_dropped_and_never_taken_for_the_echoing_sockets_own(
        doc_connect, sio_team, sio_app):  # noqa: F811
    """y-socket.io's provider re-sends every state it receives. An echo of a state the document knows (from this
    process, or remembered in Redis by another) is not relayed again, and its client is not removed when the echoing
    socket leaves."""
    sio_app.config["COEDIT_AWARENESS_TICK"] = 0  # each message relayed at once
    alice = doc_connect(sio_team.owner)
    hers = awareness.Entry(11, 1, '{"user":{"name":"Alice"}}')
    alice.emit("awareness-update", awareness.encode([hers]), namespace=alice.ns)
    elsewhere = awareness.Entry(33, 4, '{"user":{"name":"Dave"}}')  # a client of another process, as it remembers it
    with sio_app.app_context():
        awareness.remember(alice.ns, [elsewhere])
    bob = doc_connect(sio_team.collaborator)
    assert sorted(awareness.decode(received(bob, "awareness-update")[-1]), key=lambda e: e.client_id) == [
        hers, elsewhere]  # the states it is sent at connect
    received(alice, "awareness-update")
    # Bob's provider echoes what it was sent at connect before it announces itself (the browser case), then
    # announces its own client; later it echoes Alice's next move.
    bob.emit("awareness-update", awareness.encode([hers, elsewhere]), namespace=bob.ns)
    assert not received(alice, "awareness-update")
    his = awareness.Entry(22, 1, '{"user":{"name":"Bob"}}')
    bob.emit("awareness-update", awareness.encode([his]), namespace=bob.ns)
    assert [awareness.decode(m) for m in received(alice, "awareness-update")] == [[his]]
    moved = awareness.Entry(11, 2, '{"user":{"name":"Alice"},"cursor":1}')
    alice.emit("awareness-update", awareness.encode([moved]), namespace=alice.ns)
    assert [awareness.decode(m) for m in received(bob, "awareness-update")] == [[moved]]
    bob.emit("awareness-update", awareness.encode([moved]), namespace=bob.ns)
    walked = awareness.Entry(33, 5, '{"user":{"name":"Dave"},"cursor":9}')  # relayed to Bob by the other process
    with sio_app.app_context():
        awareness.remember(alice.ns, [walked])
    bob.emit("awareness-update", awareness.encode([walked]), namespace=bob.ns)
    assert not received(alice, "awareness-update")
    bob.disconnect(bob.ns)  # only his own client goes
    assert [awareness.decode(m) for m in received(alice, "awareness-update")] == [[awareness.Entry(22, 2, "null")]]

    # Under gunicorn the socket lanes drop such echoes as they arrive (`Coedit.echoed`); anything it is not sure of
    # goes to the handler.
    state = sio_app.extensions["coedit"]
    assert sio_app.extensions["socket_lanes"].needless == state.echoed

    def echoed(*entries, event="awareness-update", namespace=alice.ns):
        return state.echoed(namespace, [event, awareness.encode(list(entries))])

    assert echoed(moved) and echoed(hers, walked) and echoed(awareness.Entry(22, 2, "null"))
    assert not echoed(awareness.Entry(11, 3, "{}"))  # newer
    assert not echoed(moved, awareness.Entry(44, 1, "{}"))  # one unknown client
    assert not echoed()
    assert not echoed(moved, event="sync-update")
    assert not echoed(moved, namespace=alice.ns + "x")  # no socket of that document here
    assert not state.echoed(alice.ns, ["awareness-update", b"\x05\x01"])  # malformed: the handler refuses it
    alice.disconnect(alice.ns)
    assert not echoed(moved)  # the document's last socket here took its clocks along
    assert alice.ns not in state.clocks and alice.ns not in state.sockets


def test_a_newcomer_gets_present_states_in_messages_its_echo_fits(doc_connect, sio_team, sio_app):  # noqa: F811
    """Twenty people present: the newcomer is sent them in messages of at most MAX_ENTRIES states, so the echo of
    each that its provider sends back is a well-formed awareness update, not an `invalid_update` strike."""
    namespace = f"/yjs|{sio_team.project_id}/{PATH}"
    present = [awareness.Entry(100 + n, 1, f'{{"n":{n}}}') for n in range(20)]
    with sio_app.app_context():
        awareness.remember(namespace, present)
    bob = doc_connect(sio_team.collaborator)
    sent = [awareness.decode(message) for message in received(bob, "awareness-update")]
    assert [len(entries) for entries in sent] == [awareness.MAX_ENTRIES, 20 - awareness.MAX_ENTRIES]
    assert sorted(entry.client_id for entries in sent for entry in entries) == [entry.client_id for entry in present]
    for entries in sent:
        bob.emit("awareness-update", awareness.encode(entries), namespace=bob.ns)
    assert not received(bob, "yjs-error")


def test_awareness_of_a_document_is_merged_per_tick(doc_connect, sio_team, sio_app):  # noqa: F811
    """Within a tick, every client's latest state goes out in one message to every socket of the document."""
    sio_app.config["COEDIT_AWARENESS_TICK"] = 0.2
    alice, bob = doc_connect(sio_team.owner), doc_connect(sio_team.collaborator)
    # Alice's caret moves twice (then an older state arrives late: ignored), Bob's once.
    for sio, client_id, clock in ((alice, 11, 1), (bob, 22, 1), (alice, 11, 3), (alice, 11, 2)):
        sio.emit("awareness-update", awareness.encode([awareness.Entry(client_id, clock, f'{{"n":{clock}}}')]),
                 namespace=sio.ns)
    assert not received(bob, "awareness-update")  # not before the tick
    socketio.sleep(0.5)
    merged = [awareness.Entry(11, 3, '{"n":3}'), awareness.Entry(22, 1, '{"n":1}')]
    for sio in (alice, bob):
        assert [sorted(awareness.decode(m), key=lambda e: e.client_id) for m in received(sio, "awareness-update")] \
            == [merged]
    carol = doc_connect(sio_team.viewer)  # remembered for newcomers too
    assert sorted(awareness.decode(received(carol, "awareness-update")[-1]), key=lambda e: e.client_id) == merged


def test_auth_hands_over_a_fresh_token_of_the_same_user(doc_connect, sio_team):  # noqa: F811
    owner = doc_connect(sio_team.owner)
    assert owner.emit("auth", {"token": sio_team.owner.access}, namespace=owner.ns, callback=True)["ok"] is True
    other = owner.emit("auth", {"token": sio_team.viewer.access}, namespace=owner.ns, callback=True)
    assert other["ok"] is False and other["error"]["code"] == "wrong_user"


@pytest.mark.parametrize("namespace", ["/other", "/yjs|01/doc.txt", "/yjs|1/../etc", "/yjs|x/doc.txt"])
def test_namespaces_that_are_not_documents_are_refused(sio_app, sio_team, namespace):  # noqa: F811
    sio = socketio.test_client(sio_app, namespace=namespace, auth={"token": sio_team.owner.access})
    assert not sio.is_connected(namespace)


def test_outsiders_cannot_open_a_document(doc_connect, sio_team):  # noqa: F811
    assert not doc_connect(sio_team.other).is_connected(f"/yjs|{sio_team.project_id}/{PATH}")


def test_a_removed_member_is_told_and_disconnected(doc_connect, sio_team, sio_http):  # noqa: F811
    collab = doc_connect(sio_team.collaborator)
    removed = sio_http.delete(project_url(sio_team.project_id, "collaborators", sio_team.collaborator.id),
                              headers=sio_team.owner.headers)
    assert removed.status_code == 204
    assert not collab.is_connected(collab.ns)
    told = [p["args"][0]["code"] for p in collab.queue if p["namespace"] == collab.ns and p["name"] == "yjs-error"]
    assert told == ["forbidden"]


def test_updates_that_break_yrs_are_refused_and_the_document_stays_whole(doc_connect, sio_team, sio_http):  # noqa: F811
    """Two malformed updates from tests/unit/test_yjs_wire.py: one Yrs panics on (a PanicException, which no
    `except Exception` catches), one it applies and then panics on at every later encode (stored, it broke every
    latecomer's sync). Both are refused with invalid_update, nothing is stored or relayed, the socket keeps editing."""
    owner, collab = doc_connect(sio_team.owner), doc_connect(sio_team.collaborator)
    doc = crdt.new_doc()
    owner.emit("sync-update", typed("hello", doc), namespace=owner.ns)
    for bad in ("0201020504010004f09f988002020000ffffffffffffffff7f00030103010001",
                "01020201000043ffffffffffffffffff01050000"):
        owner.emit("sync-update", bytes.fromhex(bad), namespace=owner.ns)
    assert [e["code"] for e in received(owner, "yjs-error")] == ["invalid_update", "invalid_update"]
    owner.emit("sync-update", typed(" world", doc), namespace=owner.ns)
    assert owner.is_connected(owner.ns)
    assert len(received(collab, "sync-update")) == 2  # the good ones only
    late = doc_connect(sio_team.viewer)
    whole = crdt.new_doc()
    crdt.apply(whole, late.emit("sync-step-1", crdt.EMPTY_STATE, namespace=late.ns, callback=True))
    assert crdt.text_of(whole) == "hello world"
    body = sio_http.get(project_url(sio_team.project_id, "files", PATH), headers=sio_team.viewer.headers).json
    assert body["content"] == "hello world"


def test_a_relay_the_queue_lost_is_told_and_a_resubscription_resyncs(doc_connect, sio_team, sio_app,  # noqa: F811
                                                                       monkeypatch):
    """The queue gives up publishing (Redis down): this process's editors still get the update and are told that
    other processes' editors will not see it live. Once the queue is subscribed again, `resync` sends every
    document with editors here whole, from the database."""
    owner, collab = doc_connect(sio_team.owner), doc_connect(sio_team.collaborator)
    manager = socketio.server.manager
    emit = manager.emit

    def losing(event, *args, **kwargs):  # what OrderedRedisManager counts when `_publish` gives up
        emit(event, *args, **kwargs)
        if event == "sync-update" and not kwargs.get("ignore_queue"):
            manager.lost_publishes += 1

    monkeypatch.setattr(manager, "lost_publishes", 0, raising=False)
    monkeypatch.setattr(manager, "emit", losing)
    doc = crdt.new_doc()
    owner.emit("sync-update", typed("saved ", doc), namespace=owner.ns)
    owner.emit("sync-update", typed("anyway", doc), namespace=owner.ns)
    for sio, relayed in ((owner, 0), (collab, 2)):  # told once, not per keystroke
        got = sio.get_received(sio.ns)
        assert [(e["args"][0]["code"], "Redis" in e["args"][0]["message"]) for e in got if e["name"] == "yjs-error"] \
            == [("unavailable", True)]
        assert len([e for e in got if e["name"] == "sync-update"]) == relayed
    coedit.resync(sio_app)
    for sio in (owner, collab):
        whole = crdt.new_doc()
        crdt.apply(whole, received(sio, "sync-update")[-1])
        assert crdt.text_of(whole) == "saved anyway"

    def down(*_):
        raise ServiceUnavailable("down")

    monkeypatch.setattr(coedit.documents, "state_for", down)
    coedit.resync(sio_app)  # the database down as well: nothing sent now, their reconnect's sync-step-1 carries it
    assert not received(owner, "sync-update")
