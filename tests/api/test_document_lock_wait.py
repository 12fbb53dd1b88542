"""A co-editing write that waits on the document row's lock (PostgreSQL) sees everything committed before it got it.

The store locks the row and reads the updates stored since, the authors' roles and the quota usage in one round
trip (two statements in one query string). A statement's snapshot is taken when it starts, so the read must not be
part of the locking statement: here another process's writer holds the row, stores an update and downgrades the
author while our writer waits; our writer must then apply that update (the file's text has it) and refuse its own.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from pg_locks import wait_for_lock_waiters
from teams import make_team
from typist import Typist

from workspace.documents import store
from workspace.errors import Forbidden
from workspace.extensions import db
from workspace.models import ProjectFile


@pytest.fixture
def team(client, make_user):
    return make_team(client, make_user)


def _write_behind(app, team, path: str, blocker_statements) -> object:
    """Store "a", then hold the row in another transaction that runs `blocker_statements(conn, document_id)` and
    commits only once our writer of "c" waits on it; returns that writer's outcome."""
    user = {"id": team.collaborator.id, "name": "Collab"}
    alice = Typist()
    with app.app_context():
        store.apply_update(team.project_id, path, user, alice.type("a"))
        document_id = db.session.scalar(sa.text("SELECT id FROM documents WHERE project_id = :p AND path = :path"),
                                        {"p": team.project_id, "path": path})
        db.session.rollback()
    outcome: list[object] = []

    def write() -> None:
        with app.app_context():
            try:
                outcome.append(store.apply_update(team.project_id, path, user, alice.type("c")))
            except Exception as exc:  # noqa: BLE001 - the outcome is what the test looks at
                outcome.append(exc)

    engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.connect() as blocker:
            transaction = blocker.begin()
            blocker_pid = blocker.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            blocker.execute(sa.text("SELECT 1 FROM documents WHERE id = :id FOR UPDATE"), {"id": document_id})
            writer = threading.Thread(target=write)
            writer.start()
            wait_for_lock_waiters(engine, blocker_pid, 1)
            blocker_statements(blocker, document_id)
            transaction.commit()
        writer.join(20)
    finally:
        engine.dispose()
    assert len(outcome) == 1
    return outcome[0]


def _file_text(app, team, path: str) -> str:
    with app.app_context():
        return db.session.scalar(sa.select(ProjectFile.content).where(ProjectFile.project_id == team.project_id,
                                                                      ProjectFile.path == path))


def test_an_update_stored_while_the_writer_waited_is_caught_up(app, team):
    bob = Typist()

    def store_b(conn, document_id):
        conn.execute(sa.text("INSERT INTO document_updates (document_id, data, user_id, created_at) "
                             "VALUES (:d, :data, :u, now())"),
                     {"d": document_id, "data": bob.type("b"), "u": team.owner.id})
        conn.execute(sa.text("UPDATE documents SET update_count = update_count + 1 WHERE id = :d"), {"d": document_id})

    change = _write_behind(app, team, "wait.txt", store_b)
    assert isinstance(change, store.Change)
    assert sorted(_file_text(app, team, "wait.txt")) == ["a", "b", "c"]


def test_a_downgrade_committed_while_the_writer_waited_applies_to_it(app, team):
    def downgrade(conn, _document_id):
        conn.execute(sa.text("UPDATE memberships SET role = 'viewer' WHERE project_id = :p AND user_id = :u"),
                     {"p": team.project_id, "u": team.collaborator.id})

    outcome = _write_behind(app, team, "role.txt", downgrade)
    assert isinstance(outcome, Forbidden)
    assert _file_text(app, team, "role.txt") == "a"
