"""The Redis pools wait for a free connection (up to REDIS_POOL_TIMEOUT) instead of failing with "Too many
connections": a burst of work queues for a moment rather than turning into service_unavailable for everyone."""

from __future__ import annotations

import threading

import pytest
import redis

from workspace.extensions import redis_store


def test_a_caller_waits_for_a_free_connection_instead_of_failing(make_app):
    app = make_app(REDIS_MAX_CONNECTIONS=1, REDIS_POOL_TIMEOUT=30)
    with app.app_context():
        client = redis_store.client
        key = redis_store.key("pool", "probe")
    client.set(key, "value", ex=60)
    held = client.connection_pool.get_connection()  # the pool's only connection, busy elsewhere
    outcome = {}

    def use_redis() -> None:
        try:
            outcome["value"] = client.get(key)
        except redis.RedisError as exc:
            outcome["error"] = exc

    caller = threading.Thread(target=use_redis)
    caller.start()
    caller.join(0.3)
    assert caller.is_alive() and not outcome, outcome  # waiting, not failed
    client.connection_pool.release(held)
    caller.join(10)
    assert outcome == {"value": "value"}


def test_the_rate_limiter_waits_for_connections_too(app):
    assert isinstance(app.config["RATELIMIT_STORAGE_OPTIONS"]["connection_pool"], redis.BlockingConnectionPool)


def test_replies_are_parsed_by_hiredis(app):
    """requirements.txt installs hiredis for its C reply parser; redis-py falls back to pure Python silently."""
    client = app.extensions["redis_store"]["client"]
    connection = client.connection_pool.get_connection()
    try:
        assert type(connection._parser).__name__ == "_HiredisParser"
        assert client.mget("never-set-a", "never-set-b") == [None, None]
    finally:
        client.connection_pool.release(connection)


def test_a_direct_command_replies_as_the_client_does(app):
    with app.app_context():
        client = redis_store.client
        keys = [redis_store.key("direct", name) for name in ("a", "b", "c")]
        client.set(keys[0], "1", ex=60)
        client.set(keys[2], "ünïcode", ex=60)
        assert redis_store.command("MGET", *keys) == client.mget(*keys) == ["1", None, "ünïcode"]
        assert redis_store.command("EXISTS", *keys) == client.exists(*keys) == 2
        with pytest.raises(redis.ResponseError):
            redis_store.command("INCR", keys[2])  # an error reply is raised, and the connection stays usable
        assert redis_store.command("EXISTS", keys[1]) == 0


def test_a_direct_command_whose_connection_fails_goes_through_the_client(make_app, monkeypatch):
    app = make_app(REDIS_MAX_CONNECTIONS=1, REDIS_POOL_TIMEOUT=1)
    with app.app_context():
        client = redis_store.client
        key = redis_store.key("direct", "after-failure")
        client.set(key, "v", ex=60)
        connection_class = client.connection_pool.connection_class
        original, failures = connection_class.read_response, []

        def fails_once(self, *args, **kwargs):
            if not failures:
                failures.append(self)
                self.disconnect()  # as redis-py does when a read fails
                raise redis.ConnectionError("Connection closed by server.")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(connection_class, "read_response", fails_once)
        assert redis_store.command("MGET", key) == ["v"]
        # The pool's only connection was released first, or the client would have waited 1 s and failed.
        assert len(failures) == 1


def test_the_embedded_store_answers_direct_commands(make_app):
    app = make_app(REDIS_URL="")
    with app.app_context():
        present, absent = redis_store.key("direct", "x"), redis_store.key("direct", "y")
        redis_store.client.set(present, "1")
        assert redis_store.command("MGET", present, absent) == ["1", None]
