"""A Redis restart under a running process: its pooled connections are dead, and the first command on each must not
fail the request that draws it (a 503 for nothing: the server is back). redis-py's pool reconnects a connection it
finds closed by the server when it hands it out (`get_connection` checks that nothing is readable on it): these
fail if that check is lost (an upgrade, or our readiness patch, workspace/redis_readiness.py, answering wrongly)."""

from __future__ import annotations

import pytest
from teams import make_team

from processes import RedisServer
from workspace.extensions import redis_store


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.kill()


@pytest.fixture
def app(make_app, own_redis):
    return make_app(REDIS_URL=own_redis.url)


def _pooled(app) -> int:
    pool = app.extensions["redis_store"]["client"].connection_pool
    return sum(1 for connection in pool._connections if connection is not None and connection._sock is not None)


def test_commands_after_a_restart_reconnect_instead_of_failing(app, own_redis):
    with app.app_context():
        client = redis_store.client
        assert client.set("before", "1") and client.get("before") == "1"
        with client.pipeline() as pipe:  # a second pooled connection, held while the first is busy
            pipe.incr("n").incr("n")
            assert pipe.execute() == [1, 2]
        assert _pooled(app) >= 1
        own_redis.kill()
        own_redis.start()
        assert client.get("before") is None  # a new, empty server: answered, not raised
        with client.pipeline() as pipe:
            pipe.incr("n")
            assert pipe.execute() == [1]  # sent once: the dead connection never delivered the first try
        assert redis_store.command("EXISTS", "before") == 0


def test_a_request_after_a_restart_is_served(client, make_user, own_redis):
    team = make_team(client, make_user)
    web = client
    assert web.get("/api/v1/auth/me", headers=team.owner.headers).status_code == 200
    assert web.get("/api/v1/projects/", headers=team.owner.headers).status_code == 200
    own_redis.kill()
    own_redis.start()
    for _ in range(3):  # every pooled connection is dead: each must reconnect
        assert web.get("/api/v1/projects/", headers=team.owner.headers).status_code == 200

