"""The document store in embedded mode (SQLite, no Redis): diff-to-update, apply/validate/store, REST writes
through updates, roles, and compaction (the same text before and after, however the history was cut)."""

from __future__ import annotations

import random
import threading
import time

import pytest
import sqlalchemy as sa
from pycrdt import Doc, Text

from workspace import create_app, events
from workspace.documents import compaction, crdt, store
from workspace.errors import Conflict, Forbidden, PayloadTooLarge
from workspace.extensions import db
from workspace.models import Document, DocumentUpdate, Membership, Project, ProjectFile, Role, User

ALPHABET = "ab \n😀éx"


@pytest.fixture
def team(app):
    with app.app_context():
        users = [User(email=f"{n}@example.com", name=n, password_hash="x") for n in ("owner", "viewer")]
        db.session.add_all(users)
        db.session.flush()
        project = Project(name="p", owner_id=users[0].id)
        db.session.add(project)
        db.session.flush()
        db.session.add_all([Membership(project_id=project.id, user_id=users[0].id, role=Role.OWNER),
                            Membership(project_id=project.id, user_id=users[1].id, role=Role.VIEWER)])
        db.session.commit()
        return {"project_id": project.id, "owner": {"id": users[0].id, "name": "owner"},
                "viewer": {"id": users[1].id, "name": "viewer"}}


class Editor:
    """A client-side Yjs document (pycrdt stands in for the JS client: the wire format is the same)."""

    def __init__(self) -> None:
        self.doc = crdt.new_doc()
        self.text = self.doc.get(crdt.TEXT_NAME, type=Text)
        self.sent: list[bytes] = []
        self.doc.observe(lambda event: self.sent.append(event.update))

    def type(self, chars: str) -> bytes:
        """Append `chars` (pycrdt's text index is in UTF-8 bytes, `len` too) and return the update it made."""
        self.text.insert(len(self.text), chars)
        return self.sent[-1]


def stored_rows(app, project_id, path):
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(DocumentUpdate).join(Document)
                                 .where(Document.project_id == project_id, Document.path == path))


def file_row(app, project_id, path):
    with app.app_context():
        row = db.session.scalar(sa.select(ProjectFile).where(ProjectFile.project_id == project_id,
                                                              ProjectFile.path == path))
        return None if row is None else (row.content, row.version, row.size)


@pytest.mark.parametrize("seed", range(40))
def test_edits_turn_any_text_into_any_other(seed):
    rng = random.Random(seed)
    old = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 40)))
    new = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 40)))
    doc = crdt.new_doc()
    crdt.replace_text(doc, old)
    update = crdt.replace_text(doc, new)
    assert crdt.text_of(doc) == new
    peer = crdt.new_doc()  # the update alone, on a peer that had the old text, gives the new text
    crdt.apply(peer, doc.get_update())
    assert crdt.text_of(peer) == new
    assert (update == crdt.EMPTY_UPDATE) == (old == new)


def test_a_whole_text_replacement_merges_with_concurrent_typing():
    server = crdt.new_doc()
    crdt.replace_text(server, "alpha\nbeta\ngamma\n")
    client = crdt.new_doc()
    crdt.apply(client, server.get_update())
    client.get(crdt.TEXT_NAME, type=Text).insert(0, ">> ")  # typed while...
    rest = crdt.replace_text(server, "alpha\nbeta\ngamma\ndelta\n")  # ...a REST PUT appended a line
    crdt.apply(server, client.get_update(server.get_state()))
    crdt.apply(client, rest)
    assert crdt.text_of(server) == crdt.text_of(client) == ">> alpha\nbeta\ngamma\ndelta\n"


def test_large_changes_are_diffed_by_line():
    old = "".join(f"line {i}\n" for i in range(5000))
    new = old.replace("line 2500\n", "LINE 2500\n") + "tail"
    doc = crdt.new_doc()
    crdt.replace_text(doc, old)
    crdt.replace_text(doc, new)
    assert crdt.text_of(doc) == new


def test_updates_are_validated_stored_and_materialised(app, team):
    pid, owner = team["project_id"], team["owner"]
    alice = Editor()
    with app.app_context():
        change = store.apply_update(pid, "a.txt", owner, alice.type("héllo"))
        assert change.created and change.version == 1
        store.apply_update(pid, "a.txt", owner, alice.type(" 😀"))
        with pytest.raises(crdt.InvalidUpdate):
            store.apply_update(pid, "a.txt", owner, b"\xff\xff\xff")
        assert store.apply_update(pid, "a.txt", owner, crdt.EMPTY_UPDATE).version is None
        latecomer = crdt.new_doc()
        crdt.apply(latecomer, store.state_for(pid, "a.txt"))
        assert crdt.text_of(latecomer) == "héllo 😀"
    assert stored_rows(app, pid, "a.txt") == 2  # the refused and the empty update were not stored
    assert file_row(app, pid, "a.txt") == ("héllo 😀", 2, len("héllo 😀".encode()))


def test_a_viewer_update_is_refused_and_nothing_is_stored(app, team):
    with app.app_context(), pytest.raises(Forbidden):
        store.apply_update(team["project_id"], "a.txt", team["viewer"], Editor().type("x"))
    assert stored_rows(app, team["project_id"], "a.txt") == 0
    assert file_row(app, team["project_id"], "a.txt") is None


def test_a_text_beyond_the_file_limit_is_refused_and_forgotten(app, team):
    app.config["MAX_FILE_BYTES"] = 10
    pid, owner = team["project_id"], team["owner"]
    alice = Editor()
    with app.app_context():
        store.apply_update(pid, "a.txt", owner, alice.type("12345"))
        with pytest.raises(PayloadTooLarge):
            store.apply_update(pid, "a.txt", owner, alice.type("6789012345"))
        assert crdt.text_of(_loaded(pid, "a.txt")) == "12345"  # the cached document did not keep it either


def _loaded(pid, path) -> Doc:
    doc = crdt.new_doc()
    crdt.apply(doc, store.state_for(pid, path))
    return doc


def test_rest_writes_go_through_updates_and_keep_base_version(app, team):
    pid, owner = team["project_id"], team["owner"]
    with app.app_context():
        first = store.write_text(pid, "b.txt", owner, "one\n", base_version=0)
        assert (first.version, first.created) == (1, True)
        with pytest.raises(Conflict):
            store.write_text(pid, "b.txt", owner, "x", base_version=0)
        editor = crdt.new_doc()
        crdt.apply(editor, store.state_for(pid, "b.txt"))
        second = store.write_text(pid, "b.txt", owner, "one\ntwo\n", base_version=1)
        crdt.apply(editor, second.update)  # what a live editor receives
        assert crdt.text_of(editor) == "one\ntwo\n"
        assert store.delete_text(pid, "b.txt", owner) == 2
        assert crdt.text_of(_loaded(pid, "b.txt")) == ""
    assert file_row(app, pid, "b.txt") is None


def test_a_file_written_before_coediting_is_seeded_once(app, team):
    pid = team["project_id"]
    with app.app_context():
        db.session.add(ProjectFile(project_id=pid, path="old.txt", content="legacy", version=3, size=6))
        db.session.commit()
        assert crdt.text_of(_loaded(pid, "old.txt")) == "legacy"
        store.forget(pid, "old.txt")
        assert crdt.text_of(_loaded(pid, "old.txt")) == "legacy"
    assert stored_rows(app, pid, "old.txt") == 1


def test_compaction_keeps_the_text_and_other_processes_catch_up(app, team, tmp_path):
    pid, owner = team["project_id"], team["owner"]
    other = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"], "REDIS_URL": None,
                        "SOCKETIO_MESSAGE_QUEUE": None})  # a second process on the same database
    alice = Editor()
    with app.app_context():
        for _ in range(30):
            store.apply_update(pid, "c.txt", owner, alice.type("x"))
    with other.app_context():
        assert crdt.text_of(_loaded(pid, "c.txt")) == "x" * 30  # caches 30 updates
    with app.app_context():
        for _ in range(30, 40):
            store.apply_update(pid, "c.txt", owner, alice.type("y"))
        document_id = db.session.scalar(sa.select(Document.id).where(Document.path == "c.txt"))
        before = crdt.text_of(_loaded(pid, "c.txt"))
        result = compaction.compact(document_id)
        assert result["merged"] == 40
        store.forget(pid, "c.txt")
        assert crdt.text_of(_loaded(pid, "c.txt")) == before == "x" * 30 + "y" * 10
        store.apply_update(pid, "c.txt", owner, alice.type("z"))
    assert stored_rows(app, pid, "c.txt") == 1
    with other.app_context():  # its cache predates the snapshot: it must take it, not just the rows after it
        assert crdt.text_of(_loaded(pid, "c.txt")) == "x" * 30 + "y" * 10 + "z"
        db.session.remove()


def test_compaction_is_enqueued_past_the_threshold_and_runs_in_embedded_mode(app, team):
    app.config["COEDIT_COMPACT_THRESHOLD"] = 5
    pid, owner = team["project_id"], team["owner"]
    alice = Editor()
    with app.app_context():
        for _ in range(6):
            store.apply_update(pid, "d.txt", owner, alice.type("k"))
    deadline = time.monotonic() + 10
    while stored_rows(app, pid, "d.txt") > 1 and time.monotonic() < deadline:
        time.sleep(0.05)  # a background task of this process: no event to await from here
    assert stored_rows(app, pid, "d.txt") <= 1
    with app.app_context():
        store.forget(pid, "d.txt")
        assert crdt.text_of(_loaded(pid, "d.txt")) == "kkkkkk"


def _group_of_writers(app, pid, path, writes):
    """Run `writes` ([(user, update)]) in threads while the first one's commit is held back: the first commits
    alone, the rest wait and are committed together as one group. Returns each writer's outcome (Change or the
    exception) and the `document_changed` updates announced, in order."""
    outcomes: dict[int, object] = {}
    relayed: list[bytes] = []

    def relay(_sender, *, update, **_):
        relayed.append(update)

    def write(i, user, update):
        with app.app_context():
            try:
                outcomes[i] = store.apply_update(pid, path, user, update, origin=f"sid-{i}")
            except Exception as exc:  # noqa: BLE001 - the outcome is what the test looks at
                outcomes[i] = exc

    events.document_changed.connect(relay, sender=app)
    held = store._lock((pid, path))
    threads = [threading.Thread(target=write, args=(i, user, update)) for i, (user, update) in enumerate(writes)]
    try:
        with held:
            threads[0].start()
            _until(lambda: len(app.extensions["documents"].groups.get((pid, path), [1])) == 0)  # it took its own
            for thread in threads[1:]:
                thread.start()
            _until(lambda: len(app.extensions["documents"].groups[(pid, path)]) == len(writes) - 1)
        for thread in threads:
            thread.join(10)
    finally:
        events.document_changed.disconnect(relay, sender=app)
    return [outcomes[i] for i in range(len(writes))], relayed


def _until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_waiting_writers_of_a_document_are_committed_as_one_group(app, team):
    """Group commit: the writers that queued behind a commit are stored in one transaction (one row per author)
    and relayed as one merged update; a viewer among them is refused alone; all of it survives a cold load."""
    pid, owner, viewer = team["project_id"], team["owner"], team["viewer"]
    alice, bob, eve = Editor(), Editor(), Editor()
    with app.app_context():
        start = alice.type("start ")
        store.apply_update(pid, "g.txt", owner, start)  # the document and its file exist
    writes = [(owner, alice.type("a")), (owner, bob.type("b")), (viewer, eve.type("v")), (owner, bob.type("c"))]
    outcomes, relayed = _group_of_writers(app, pid, "g.txt", writes)
    assert isinstance(outcomes[2], Forbidden)
    assert [type(o) for i, o in enumerate(outcomes) if i != 2] == [store.Change] * 3
    assert outcomes[0].version == 2 and outcomes[1].version == outcomes[3].version == 3  # one file write per group
    assert stored_rows(app, pid, "g.txt") == 3  # start, a, then b+c merged into one row of their author
    assert len(relayed) == 2  # "a" alone, then the group as one update carrying both of bob's keystrokes
    peer = crdt.new_doc()
    for update in [start, *relayed]:
        crdt.apply(peer, update)
    assert sorted(crdt.text_of(peer)) == sorted("start abc")
    with app.app_context():
        store.forget(pid, "g.txt")  # as a restarted process: only what was committed
        text = crdt.text_of(_loaded(pid, "g.txt"))
    assert sorted(text) == sorted("start abc") and "v" not in text
    assert file_row(app, pid, "g.txt")[0] == text


def test_an_update_that_fails_its_group_is_refused_alone(app, team):
    """One update that fails the whole transaction (here: the text would pass the file limit) makes its group retry
    one by one: only it is refused."""
    app.config["MAX_FILE_BYTES"] = 10
    pid, owner = team["project_id"], team["owner"]
    alice, bob, carol = Editor(), Editor(), Editor()
    writes = [(owner, alice.type("x")), (owner, alice.type("y")), (owner, carol.type("0123456789")),
              (owner, bob.type("z"))]
    outcomes, relayed = _group_of_writers(app, pid, "h.txt", writes)
    assert isinstance(outcomes[2], PayloadTooLarge)
    assert all(isinstance(outcomes[i], store.Change) for i in (0, 1, 3))
    assert len(relayed) == 3  # x alone, then y and z one by one
    with app.app_context():
        store.forget(pid, "h.txt")
        assert sorted(crdt.text_of(_loaded(pid, "h.txt"))) == sorted("xyz")


def test_a_write_after_catching_up_with_another_process_saves_the_text(app, team):
    """The text a process keeps with its cached document is dropped when it catches up: here its stale text equals
    the text after its next write, which must still be saved."""
    pid, owner = team["project_id"], team["owner"]
    other = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"], "REDIS_URL": None,
                        "SOCKETIO_MESSAGE_QUEUE": None})  # a second process on the same database
    alice = Editor()
    with app.app_context():
        store.apply_update(pid, "t.txt", owner, alice.type("x"))  # this process now knows the text "x"
    bob = crdt.new_doc()
    crdt.apply(bob, alice.sent[-1])
    deleted = crdt.replace_text(bob, "")
    with other.app_context():
        store.apply_update(pid, "t.txt", owner, deleted)  # the other process deletes it
        db.session.remove()
    crdt.apply(alice.doc, deleted)
    with app.app_context():  # this process catches up in the write itself
        store.apply_update(pid, "t.txt", owner, alice.type("x"))  # "x" again: changed from "", not from "x"
    assert file_row(app, pid, "t.txt")[0] == "x"
