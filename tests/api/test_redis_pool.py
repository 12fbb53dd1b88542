"""The Redis pools wait for a free connection (up to REDIS_POOL_TIMEOUT) instead of failing with "Too many
connections": a burst of work queues for a moment rather than turning into service_unavailable for everyone."""

from __future__ import annotations

import threading

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
