"""Concurrent writers against PostgreSQL, real threads: compare-and-set lets exactly one stale writer win.

To make the writers truly overlap, a blocker transaction holds the contested row (or key) while every writer
starts; the test waits until PostgreSQL reports them all waiting on that lock, then releases it. An
implementation that read the version first and wrote after would let several of them "win".
Writes go through the document store, which serialises one process's writers with a lock of its own before they
reach the database; each thread gets a lock of its own here, so the threads stand for writers in different
processes and only the database's row lock keeps them apart.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from pg_locks import holding, wait_for_lock_waiters
from teams import make_team, project_url

from workspace.documents import store
from workspace.errors import Conflict
from workspace.files import service

WRITERS = 6


@pytest.fixture
def team(client, make_user):
    return make_team(client, make_user)


@pytest.fixture(autouse=True)
def lock_per_writer(monkeypatch):
    monkeypatch.setattr(store, "_lock", lambda key: threading.Lock())


def _race(app, team, blocker_sql: list[str], **save_kwargs):
    """Run WRITERS concurrent save_file calls while `blocker_sql` holds the contested row; returns the outcomes."""
    user = {"id": team.owner.id, "name": "Owner"}
    outcomes = []
    lock = threading.Lock()

    def write(n):
        with app.app_context():
            try:
                saved = service.save_file(team.project_id, user, "race.txt", f"writer {n}", **save_kwargs)
                result = ("ok", saved.version, saved.created)
            except Conflict as exc:
                result = ("conflict", exc.details["current_version"], None)
        with lock:
            outcomes.append(result)

    engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with holding(engine, blocker_sql, {"project_id": team.project_id}) as blocker_pid:
            threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
            for thread in threads:
                thread.start()
            wait_for_lock_waiters(engine, blocker_pid, WRITERS)
        for thread in threads:
            thread.join(20)
    finally:
        engine.dispose()
    assert len(outcomes) == WRITERS
    return outcomes


LOCK_ROW = ["SELECT 1 FROM documents WHERE project_id = :project_id AND path = 'race.txt' FOR UPDATE"]
# An uncommitted insert of the same (project_id, path) makes every other insert of it wait.
HOLD_KEY = ["INSERT INTO documents (project_id, path, snapshot_upto, update_count, created_at) "
            "VALUES (:project_id, 'race.txt', 0, 0, now())"]


def _content(client, team):
    return client.get(project_url(team.project_id, "files", "race.txt"), headers=team.owner.headers).json


def test_same_base_version_exactly_one_wins(app, client, team):
    client.put(project_url(team.project_id, "files", "race.txt"), json={"content": "v1"}, headers=team.owner.headers)
    outcomes = _race(app, team, LOCK_ROW, base_version=1)
    winners = [o for o in outcomes if o[0] == "ok"]
    assert winners == [("ok", 2, False)]
    assert sorted(outcomes)[:-1] == [("conflict", 2, None)] * (WRITERS - 1)
    assert _content(client, team)["version"] == 2


def test_concurrent_creates_exactly_one_wins(app, client, team):
    outcomes = _race(app, team, HOLD_KEY, base_version=0)
    assert [o for o in outcomes if o[0] == "ok"] == [("ok", 1, True)]
    assert [o for o in outcomes if o[0] == "conflict"] == [("conflict", 1, None)] * (WRITERS - 1)


def test_concurrent_blind_writes_all_land_with_distinct_versions(app, client, team):
    outcomes = _race(app, team, HOLD_KEY)
    assert sorted(o[1] for o in outcomes) == list(range(1, WRITERS + 1))
    assert sum(1 for o in outcomes if o[2]) == 1  # exactly one of them created the file
    assert _content(client, team)["version"] == WRITERS


def test_concurrent_rest_writers_one_wins(app, client, team):
    """The same over HTTP: threads each with their own test client, all sending base_version 1."""
    url = project_url(team.project_id, "files", "race.txt")
    client.put(url, json={"content": "v1"}, headers=team.owner.headers)
    barrier = threading.Barrier(WRITERS, timeout=10)
    statuses = []

    def write(n):
        local = app.test_client()
        barrier.wait()
        statuses.append(local.put(url, json={"content": f"w{n}", "base_version": 1},
                                  headers=team.collaborator.headers).status_code)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(statuses) == [200] + [409] * (WRITERS - 1)
