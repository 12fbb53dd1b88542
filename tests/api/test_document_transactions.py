"""A co-editing write on PostgreSQL is three round trips: `BEGIN` rides in the query string that locks the document
row and reads what it needs, the update and the file row are stored in one statement, then `COMMIT`
(workspace/documents/store.py `_explicit_transaction`). psycopg2 would otherwise send `BEGIN` in a round trip of
its own. Whatever happens, the connection goes back to the pool with no transaction open and psycopg2 managing its
transactions again. And the text the process keeps with its cached document is dropped when the lock-and-read
catches up with another process's updates."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import pytest
import sqlalchemy as sa
from teams import make_team
from typist import Typist

from workspace.documents import crdt, store
from workspace.errors import PayloadTooLarge, ServiceUnavailable
from workspace.extensions import db
from workspace.models import ProjectFile


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


def test_a_keystroke_is_three_round_trips_and_stored(app, team, owner, round_trips):
    user, typist = owner, Typist()
    with app.app_context():
        store.apply_update(team.project_id, "rt.md", user, typist.type("a"))  # creates the document and the file
        db.session.remove()
        round_trips[0] = 0
        store.apply_update(team.project_id, "rt.md", user, typist.type("b"))
        assert round_trips[0] == 3
        assert file_text("rt.md") == "ab"
    clean(app)


def test_inside_a_transaction_the_caller_opened_the_write_joins_it(app, team, owner):
    user, typist = owner, Typist()
    with app.app_context():
        store.apply_update(team.project_id, "joined.md", user, typist.type("a"))
        db.session.execute(sa.text("SELECT 1"))  # psycopg2 has begun a transaction
        store.apply_update(team.project_id, "joined.md", user, typist.type("b"))
        db.session.rollback()
        assert file_text("joined.md") == "ab"
    clean(app)


def test_a_refused_write_rolls_back_and_leaves_the_connection_clean(app, team, owner):
    user, typist = owner, Typist()
    app.config["MAX_FILE_BYTES"] = 3
    with app.app_context():
        store.apply_update(team.project_id, "big.md", user, typist.type("abc"))
        with pytest.raises(PayloadTooLarge):
            store.apply_update(team.project_id, "big.md", user, typist.type("d"))  # refused after BEGIN and the lock
    clean(app)
    with app.app_context():
        assert file_text("big.md") == "abc"


def fail_the_store(monkeypatch) -> None:
    """The store-and-save statement fails on the server (the transaction is aborted there)."""
    monkeypatch.setattr(store, "_STORE_AND_SAVE", sa.text("SELECT 1/0"))


def fail_the_commit(monkeypatch) -> None:
    """The COMMIT fails and leaves the (aborted) transaction open on the server."""
    real = store._end_explicit
    monkeypatch.setattr(store, "_end_explicit",
                        lambda dbapi, statement: real(dbapi, "SELECT 1/0" if statement == "COMMIT" else statement))


@pytest.mark.parametrize("failure", [fail_the_store, fail_the_commit])
def test_a_failed_statement_or_commit_is_storage_unavailable_keeps_nothing_and_leaves_the_connection_clean(
        app, team, owner, monkeypatch, failure):
    user, typist = owner, Typist()
    with app.app_context():
        store.apply_update(team.project_id, "err.md", user, typist.type("a"))
        db.session.remove()
        failure(monkeypatch)
        lost = typist.type("b")
        with pytest.raises(ServiceUnavailable):
            store.apply_update(team.project_id, "err.md", user, lost)
    monkeypatch.undo()
    clean(app)
    with app.app_context():
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
