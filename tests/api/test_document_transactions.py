"""A co-editing write on PostgreSQL is two round trips: `BEGIN` rides in the query string that locks the document
row and reads what it needs (new update ids and the file's version included), and the update and the file row ride
with the `COMMIT` (workspace/documents/store.py `_explicit_transaction`, `_Row.tail`); the statements are prepared
once per connection (workspace/db_prepared.py). psycopg2 would otherwise send `BEGIN` in a round trip of its own.
When the last write found no other process's updates, the next is ONE round trip (`_commit_at_once`): the lock and
a statement that writes only if the cached document is still the stored one, every author may edit and the file
and quota allow it; otherwise it wrote nothing and the two round trips follow. An editor's update commits without
waiting for the WAL flush unless COEDIT_SYNCHRONOUS_COMMIT; a REST write always waits.
Whatever happens, the connection goes back to the pool with no transaction open, psycopg2 managing its transactions
again and, after a failure, no prepared statement it does not know of. And the text the process keeps with its
cached document is dropped when the lock-and-read catches up with another process's updates."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import pytest
import sqlalchemy as sa
from teams import make_team
from typist import Typist

from workspace import db_prepared
from workspace.documents import crdt, store
from workspace.errors import Forbidden, PayloadTooLarge, ServiceUnavailable
from workspace.extensions import db
from workspace.models import Membership, ProjectFile, Role


@pytest.fixture
def team(client, make_user):
    return make_team(client, make_user)


@pytest.fixture
def round_trips():
    """Counts the queries psycopg2 sends (with a wait callback set, each one waits through it once per round trip)
    while the test runs; what they were is not visible here, how many is."""
    count = [0]

    def counting(conn):
        count[0] += 1
        psycopg2.extras.wait_select(conn)

    psycopg2.extensions.set_wait_callback(counting)
    try:
        yield count
    finally:
        psycopg2.extensions.set_wait_callback(None)


def file_text(path: str) -> str:
    """The file row's text (in an app context), the reading transaction ended."""
    text = db.session.scalar(sa.select(ProjectFile.content).where(ProjectFile.path == path))
    db.session.rollback()
    return text


@pytest.fixture
def owner(team) -> dict:
    return {"id": team.owner.id, "name": "Owner"}


def clean(app) -> None:
    """The pooled connection has no transaction open (on the server) and psycopg2 begins its own again."""
    with app.app_context():
        dbapi = db.session.connection().connection.dbapi_connection
        assert dbapi.autocommit is False
        assert dbapi.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        db.session.rollback()
        idle_in_transaction = db.session.scalar(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND state LIKE 'idle in transaction%'"))
        db.session.rollback()
    assert idle_in_transaction == 0


def stored_text(fresh_app, project_id: int, path: str) -> str:
    """The document's text as a process that never cached it loads it from the database."""
    with fresh_app.app_context():
        doc = crdt.new_doc()
        crdt.apply(doc, store.state_for(project_id, path))
        db.session.remove()
    return crdt.text_of(doc)


def prepared_here() -> set[str]:
    """The statements the session's connection prepared, on the server."""
    names = set(db.session.scalars(sa.text("SELECT name FROM pg_prepared_statements")))
    db.session.rollback()
    return names


@pytest.mark.parametrize("prepared", [True, False])
def test_a_keystroke_is_one_round_trip_while_this_process_writes_alone(app, team, owner, round_trips, prepared):
    app.config["DB_PREPARED_STATEMENTS"] = prepared
    user, typist = owner, Typist()
    with app.app_context():
        db.session.connection().invalidate()  # a fresh connection: its first write prepares, in the same round trips
        db.session.remove()
        store.apply_update(team.project_id, "rt.md", user, typist.type("a"))  # creates the document and the file
        db.session.remove()
        round_trips[0] = 0
        store.apply_update(team.project_id, "rt.md", user, typist.type("b"))  # a fresh load: whose rows, unknown
        assert round_trips[0] == 2
        store.apply_update(team.project_id, "rt.md", user, typist.type("c"))
        assert round_trips[0] == 3
        store.apply_update(team.project_id, "rt.md", user, typist.type("d"))
        assert round_trips[0] == 4
        assert file_text("rt.md") == "abcd"
        names = prepared_here()
        assert {name.removesuffix("_quota") for name in names} == (
            {"workspace_document_lock", "workspace_document_read", "workspace_document_store",
             "workspace_document_save", "workspace_document_write"} if prepared else set())
        rows = db.session.execute(sa.text("SELECT d.update_count, count(u.id) FROM documents d JOIN document_updates u"
                                          " ON u.document_id = d.id GROUP BY d.update_count")).one()
        db.session.rollback()
        assert tuple(rows) == (4, 4)
    clean(app)


def test_after_another_process_wrote_the_one_round_trip_writes_nothing_and_two_follow(app, make_app, team, owner,
                                                                                       round_trips):
    other, typist = make_app(), Typist()
    with app.app_context():
        for chars in "abc":
            store.apply_update(team.project_id, "two.md", owner, typist.type(chars))
        db.session.remove()
    with other.app_context():
        store.apply_update(team.project_id, "two.md", owner, typist.type("x"))
        db.session.remove()
    with app.app_context():
        round_trips[0] = 0
        store.apply_update(team.project_id, "two.md", owner, typist.type("d"))  # one that writes nothing, then two
        assert round_trips[0] == 3
        assert file_text("two.md") == "abcxd"
        round_trips[0] = 0
        store.apply_update(team.project_id, "two.md", owner, typist.type("e"))  # read whole: two again
        store.apply_update(team.project_id, "two.md", owner, typist.type("f"))  # alone since: one
        assert round_trips[0] == 3
        assert file_text("two.md") == "abcxdef"
    clean(app)
    assert stored_text(make_app(), team.project_id, "two.md") == "abcxdef"


@pytest.fixture
def scripts(monkeypatch):
    """The query strings the store sends (`db_prepared.Script`) while the test runs, with what each returned."""
    sent = []
    real = db_prepared.Script.run

    def run(script, cursor):
        rows = real(script, cursor)
        sent.append((";".join(script.sql), rows))
        return rows

    monkeypatch.setattr(db_prepared.Script, "run", run)
    return sent


@pytest.mark.parametrize("synchronous", [False, True])
def test_an_editors_update_commits_without_waiting_for_the_wal_flush_unless_configured(app, team, owner, scripts,
                                                                                       synchronous):
    app.config["COEDIT_SYNCHRONOUS_COMMIT"] = synchronous
    typist = Typist()
    with app.app_context():
        for chars in "abc":  # created, then the locked path, then at once
            store.apply_update(team.project_id, "wal.md", owner, typist.type(chars))
        keystrokes = [sql for sql, _ in scripts]
        del scripts[:]
        store.write_text(team.project_id, "wal.md", owner, "abc, saved")  # REST and FILE_CHANGE: always flushed
        assert file_text("wal.md") == "abc, saved"
    assert [sql.startswith("BEGIN;SET LOCAL synchronous_commit = off") for sql in keystrokes[:1]] == [not synchronous]
    assert keystrokes[-1].startswith("SET LOCAL synchronous_commit = off") is not synchronous
    assert not any("synchronous_commit" in sql for sql, _ in scripts)
    clean(app)


def test_the_write_at_once_runs_with_synchronous_commit_off_on_the_server(app, team, owner, scripts, monkeypatch):
    typist = Typist()
    with app.app_context():
        for chars in "ab":
            store.apply_update(team.project_id, "setting.md", owner, typist.type(chars))
        monkeypatch.setattr(store, "_WRITE_AT_ONCE", db_prepared.Statement("workspace_test_setting", sa.text(
            "SELECT NULL, current_setting('synchronous_commit'), NULL")))  # writes nothing: the locked path follows
        store.apply_update(team.project_id, "setting.md", owner, typist.type("c"))
        monkeypatch.undo()
        assert file_text("setting.md") == "abc"
    at_once = [rows for sql, rows in scripts if "workspace_test_setting" in sql]
    assert at_once == [[(None, "off", None)]]
    clean(app)


def test_a_group_of_two_authors_is_stored_at_once_one_row_each(app, team, owner, round_trips):
    collaborator, typist = {"id": team.collaborator.id, "name": "Collaborator"}, Typist()
    with app.app_context():
        for user, chars in [(owner, "a"), (owner, "b"), (collaborator, "c")]:  # each author allowed once
            store.apply_update(team.project_id, "pair.md", user, typist.type(chars))
        before = db.session.scalar(sa.text("SELECT max(id) FROM document_updates"))
        db.session.rollback()
        round_trips[0] = 0
        batch = [store._Waiting(owner, typist.type("1"), None), store._Waiting(collaborator, typist.type("2"), None),
                 store._Waiting(owner, typist.type("3"), None)]
        store._commit_group((team.project_id, "pair.md"), batch)
        assert round_trips[0] == 1
        assert [waiting.outcome.version for waiting in batch] == [4, 4, 4]
        rows = db.session.execute(sa.text("SELECT user_id FROM document_updates WHERE id > :before ORDER BY id"),
                                  {"before": before}).scalars().all()
        db.session.rollback()
        assert sorted(rows) == sorted([owner["id"], collaborator["id"]])
        assert file_text("pair.md") == "abc123"
    clean(app)


def test_a_writer_downgraded_since_their_last_write_is_refused_and_nothing_of_it_kept(app, make_app, team,
                                                                                     round_trips):
    collaborator, typist = {"id": team.collaborator.id, "name": "Collaborator"}, Typist()
    with app.app_context():
        for chars in "ab":
            store.apply_update(team.project_id, "roles.md", collaborator, typist.type(chars))
        db.session.execute(sa.update(Membership).where(Membership.user_id == collaborator["id"])
                           .values(role=Role.VIEWER))
        db.session.commit()
        round_trips[0] = 0
        with pytest.raises(Forbidden):
            store.apply_update(team.project_id, "roles.md", collaborator, typist.type("c"))
        assert round_trips[0] == 3  # at once: nothing written; then the locked path says why
        assert file_text("roles.md") == "ab"
        held = crdt.new_doc()
        crdt.apply(held, store.state_for(team.project_id, "roles.md"))  # what this process would send a joiner
        assert crdt.text_of(held) == "ab"
        round_trips[0] = 0
        with pytest.raises(Forbidden):  # known refused now: not tried at once again
            store.apply_update(team.project_id, "roles.md", collaborator, typist.type("d"))
        assert round_trips[0] == 2
    clean(app)
    assert stored_text(make_app(), team.project_id, "roles.md") == "ab"


def test_the_byte_quota_holds_at_once_and_a_shrinking_write_passes(app, team, owner, round_trips):
    app.config["MAX_PROJECT_BYTES"] = 4
    typist = Typist()
    with app.app_context():
        for chars in ["a", "b", "cd"]:
            store.apply_update(team.project_id, "q.md", owner, typist.type(chars))
        round_trips[0] = 0
        with pytest.raises(PayloadTooLarge):
            store.apply_update(team.project_id, "q.md", owner, typist.type("e"))
        assert round_trips[0] == 3
        assert file_text("q.md") == "abcd"
    app.config["MAX_PROJECT_BYTES"] = 2  # lowered under the project's size: it may still shrink
    shrinking, text = Typist(), None
    with app.app_context():
        crdt.apply(shrinking.doc, store.state_for(team.project_id, "q.md"))
        text = shrinking.doc.get(crdt.TEXT_NAME, type=crdt.Text)
        for _ in range(2):  # the first is read whole (two round trips), the second at once
            del text[len(text) - 1]
            store.apply_update(team.project_id, "q.md", owner, shrinking.sent[-1])
        assert file_text("q.md") == "ab"
    clean(app)


def test_a_file_another_process_deleted_is_created_again(app, make_app, team, owner):
    other, typist = make_app(), Typist()
    with app.app_context():
        for chars in "ab":
            store.apply_update(team.project_id, "gone.md", owner, typist.type(chars))
    with other.app_context():
        store.delete_text(team.project_id, "gone.md", owner)
        db.session.remove()
    with app.app_context():
        store.apply_update(team.project_id, "gone.md", owner, typist.type("c"))
        assert file_text("gone.md") == "c"
    clean(app)


def test_a_group_of_authors_stores_one_row_each_with_ids_taken_under_the_lock(app, make_app, team, owner):
    """The ids are taken once per author, not once per row the catch-up reads, and come after every stored id."""
    other, typist = make_app(), Typist()
    collaborator = {"id": team.collaborator.id, "name": "Collaborator"}
    with other.app_context():
        for chars in "xyz":  # three updates this process has not seen: its lock-and-read returns three rows
            store.apply_update(team.project_id, "group.md", owner, typist.type(chars))
        db.session.remove()
    with app.app_context():
        sequence = sa.text("SELECT last_value FROM document_updates_id_seq")
        before = db.session.scalar(sequence)
        db.session.rollback()
        batch = [store._Waiting(owner, typist.type("1"), None), store._Waiting(collaborator, typist.type("2"), None)]
        store._commit_group((team.project_id, "group.md"), batch)
        assert [type(waiting.outcome) for waiting in batch] == [store.Change, store.Change]
        rows = db.session.execute(sa.text(
            "SELECT id, user_id FROM document_updates WHERE id > :before ORDER BY id"), {"before": before}).all()
        assert [row.user_id for row in rows] == [owner["id"], collaborator["id"]]
        assert [row.id for row in rows] == [before + 1, before + 2]
        assert db.session.scalar(sequence) == before + 2
        db.session.rollback()
        assert file_text("group.md") == "xyz12"
    clean(app)


def test_inside_a_transaction_the_caller_opened_the_write_joins_it(app, team, owner):
    user, typist = owner, Typist()
    with app.app_context():
        for chars in "ab":  # the next write could go at once, but not inside the caller's transaction
            store.apply_update(team.project_id, "joined.md", user, typist.type(chars))
        db.session.execute(sa.text("SELECT 1"))  # psycopg2 has begun a transaction
        store.apply_update(team.project_id, "joined.md", user, typist.type("c"))
        db.session.rollback()
        assert file_text("joined.md") == "abc"
    clean(app)


def test_a_refused_write_rolls_back_and_leaves_the_connection_clean(app, team, owner):
    user, typist = owner, Typist()
    app.config["MAX_FILE_BYTES"] = 3
    with app.app_context():
        store.apply_update(team.project_id, "big.md", user, typist.type("ab"))
        store.apply_update(team.project_id, "big.md", user, typist.type("c"))
        with pytest.raises(PayloadTooLarge):  # refused before the write at once, then after BEGIN and the lock
            store.apply_update(team.project_id, "big.md", user, typist.type("d"))
    clean(app)
    with app.app_context():
        assert file_text("big.md") == "abc"


def fail_the_store(monkeypatch) -> None:
    """The statement that stores the update fails on the server (the transaction is aborted there)."""
    monkeypatch.setattr(store, "_STORE_ROWS", db_prepared.Statement("workspace_test_failing", sa.text("SELECT 1/0")))


def fail_the_commit(monkeypatch) -> None:
    """The COMMIT fails and leaves the (aborted) transaction open on the server."""
    real = store._end_explicit

    def failing(explicit, statement):
        if statement == "COMMIT":
            explicit.tail.add("SELECT 1/0")
        return real(explicit, statement)

    monkeypatch.setattr(store, "_end_explicit", failing)


def lose_the_connection(monkeypatch) -> None:
    """The pooled connection's server session is terminated (a restart, a failover) before the write uses it: psycopg2
    finds it closed under the store's own cursor, where SQLAlchemy does not see it."""
    db.engine.dispose()
    pid = db.session.scalar(sa.text("SELECT pg_backend_pid()"))  # now the pool's only connection
    db.session.remove()
    killer = sa.create_engine(db.engine.url)
    try:
        with killer.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    finally:
        killer.dispose()


def fail_the_write_at_once(monkeypatch) -> None:
    monkeypatch.setattr(store, "_WRITE_AT_ONCE", db_prepared.Statement("workspace_test_failing", sa.text("SELECT 1/0")))


# Written before: "a" (the next write is read whole: the locked path) or "a" then "!" deleted (then at once).
@pytest.mark.parametrize(("before", "failure"), [("a", fail_the_store), ("a", fail_the_commit),
                                                 ("a", lose_the_connection), ("a!", fail_the_write_at_once),
                                                 ("a!", lose_the_connection)])
def test_a_failed_statement_or_commit_is_storage_unavailable_keeps_nothing_and_leaves_the_connection_clean(
        app, team, owner, monkeypatch, before, failure):
    user, typist = owner, Typist()
    with app.app_context():
        store.apply_update(team.project_id, "err.md", user, typist.type(before))
        if before == "a!":
            text = typist.doc.get(crdt.TEXT_NAME, type=crdt.Text)
            del text[1]
            store.apply_update(team.project_id, "err.md", user, typist.sent[-1])
        db.session.remove()
        failure(monkeypatch)
        lost = typist.type("b")
        with pytest.raises(ServiceUnavailable):
            store.apply_update(team.project_id, "err.md", user, lost)
    monkeypatch.undo()
    clean(app)
    with app.app_context():
        assert prepared_here() == set()  # dropped with the rollback: the next write prepares them again
        assert file_text("err.md") == "a"
        store.apply_update(team.project_id, "err.md", user, lost)  # as the editor's resync sends it again
        store.apply_update(team.project_id, "err.md", user, typist.type("c"))
        assert file_text("err.md") == "abc"


def test_a_write_after_catching_up_in_its_lock_and_read_saves_the_text(app, make_app, team, owner):
    """As tests/unit/test_documents.py's catch-up case, through PostgreSQL's one-round-trip lock and read: the text
    this process kept ("x") is dropped when the other process's deletion is read, so "x" again is saved."""
    other = make_app()
    typist = Typist()
    with app.app_context():
        store.apply_update(team.project_id, "t.md", owner, typist.type("x"))
    deleting = crdt.new_doc()
    crdt.apply(deleting, typist.sent[-1])
    deleted = crdt.replace_text(deleting, "")
    with other.app_context():
        store.apply_update(team.project_id, "t.md", owner, deleted)
        db.session.remove()
    crdt.apply(typist.doc, deleted)
    with app.app_context():
        store.apply_update(team.project_id, "t.md", owner, typist.type("x"))
        assert file_text("t.md") == "x"
