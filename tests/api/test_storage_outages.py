"""A database that is down or a lock held too long answers 503 with `Retry-After` (REST) or an error ack (sockets),
never a 500 or a request that hangs (DB_LOCK_TIMEOUT_MS)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from pg_locks import holding
from teams import make_team, project_url

from workspace.extensions import db, socketio

# The quota lock every file write takes (workspace/files/quota.py): holding it from another session stalls writes.
QUOTA_LOCK = "SELECT pg_advisory_xact_lock(20976, :project_id)"  # 0x51F0
# Every membership read waits behind this (each test has the schema to itself while it runs).
MEMBERSHIPS_LOCK = "LOCK TABLE memberships IN ACCESS EXCLUSIVE MODE"


def _assert_unavailable(response, code: str = "service_unavailable") -> None:
    assert response.status_code == 503, response.json
    assert response.json["error"]["code"] == code
    assert response.headers["Retry-After"] == "5"


@pytest.fixture
def blocker(database_url):
    engine = sa.create_engine(database_url)
    yield engine
    engine.dispose()


def test_every_connection_carries_the_lock_timeout(make_app):
    app = make_app(DB_LOCK_TIMEOUT_MS=1234)
    with app.app_context():
        assert db.session.scalar(sa.text("SHOW lock_timeout")) == "1234ms"
        db.session.remove()


def test_a_read_behind_a_held_lock_is_a_503_not_a_hang(make_app, make_user, blocker):
    app = make_app(DB_LOCK_TIMEOUT_MS=300)
    client = app.test_client()
    team = make_team(client, make_user)
    url = project_url(team.project_id)
    with holding(blocker, [MEMBERSHIPS_LOCK]):
        started = time.monotonic()
        _assert_unavailable(client.get(url, headers=team.viewer.headers))
        assert time.monotonic() - started < 5
    assert client.get(url, headers=team.viewer.headers).status_code == 200


def test_a_file_write_behind_the_quota_lock_is_a_503_and_leaves_nothing_half_done(make_app, make_user, blocker):
    app = make_app(DB_LOCK_TIMEOUT_MS=300)
    client = app.test_client()
    team = make_team(client, make_user)
    url = project_url(team.project_id, "files", "a.txt")
    with holding(blocker, [QUOTA_LOCK], {"project_id": team.project_id}):
        _assert_unavailable(client.put(url, json={"content": "x"}, headers=team.owner.headers), "storage_unavailable")
    assert client.get(url, headers=team.owner.headers).status_code == 404
    assert client.put(url, json={"content": "x"}, headers=team.owner.headers).status_code == 201
    assert client.get(url, headers=team.owner.headers).json["content"] == "x"


def test_a_socket_event_behind_a_held_lock_acks_service_unavailable(make_app, make_user, blocker):
    make_user()  # the socket app must be the latest one built (Flask-SocketIO's test client)
    app = make_app(SOCKETIO_MESSAGE_QUEUE=None, DB_LOCK_TIMEOUT_MS=300)
    team = make_team(app.test_client(), make_user)
    sio = socketio.test_client(app, auth={"token": team.collaborator.access})
    try:
        with holding(blocker, [MEMBERSHIPS_LOCK]):
            ack = sio.emit("join", {"project_id": team.project_id}, callback=True)
        assert ack["ok"] is False and ack["error"]["code"] == "service_unavailable", ack
        assert sio.emit("join", {"project_id": team.project_id}, callback=True)["ok"] is True  # still usable
    finally:
        sio.disconnect()


@pytest.mark.parametrize("path", ["/api/v1/projects/", "/api/v1/auth/me"])
def test_an_unreachable_database_is_a_503(make_app, make_user, path):
    user = make_user()  # tokens signed with the keys every app of this test shares
    # Nothing listens on port 1: every connection attempt is refused at once.
    down = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg2://root@127.0.0.1:1/test")
    _assert_unavailable(down.test_client().get(path, headers=user.headers))
