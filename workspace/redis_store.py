"""The Redis connection every feature shares, or an in-process stand-in when REDIS_URL is unset.

Embedded mode uses fakeredis (a real Redis command implementation in memory) rather than hand-written dicts, so
cache, revocation, presence and sequence numbers run the same code with or without a Redis server (with lupa,
fakeredis runs the Lua scripts too).

The pools wait for a free connection (`BlockingConnectionPool`, up to REDIS_POOL_TIMEOUT seconds) instead of
failing with "Too many connections" once REDIS_MAX_CONNECTIONS are in use: a burst of socket events queues for a
moment rather than turning into `service_unavailable` acks for everyone in the process.
"""

from __future__ import annotations

import fakeredis
import redis
from flask import Flask, current_app

# One in-memory "server" per process, shared by every app instance in it (as a real Redis would be).
_EMBEDDED_SERVER = fakeredis.FakeServer()


def blocking_pool(app: Flask, url: str, **options) -> redis.BlockingConnectionPool:
    """A connection pool for `url` that waits for a free connection, sized and timed by the app's settings."""
    return redis.BlockingConnectionPool.from_url(
        url, max_connections=app.config["REDIS_MAX_CONNECTIONS"], timeout=app.config["REDIS_POOL_TIMEOUT"],
        socket_timeout=2, socket_connect_timeout=2, **options)


class RedisStore:
    """Flask extension holding the Redis client and the key prefix."""

    def init_app(self, app: Flask) -> None:
        url = app.config.get("REDIS_URL")
        if url:
            client = redis.Redis(connection_pool=blocking_pool(app, url, health_check_interval=30,
                                                               decode_responses=True))
        else:
            client = fakeredis.FakeRedis(server=_EMBEDDED_SERVER, decode_responses=True)
        app.extensions["redis_store"] = {"client": client, "prefix": app.config["REDIS_KEY_PREFIX"]}

    @property
    def client(self) -> redis.Redis:
        return current_app.extensions["redis_store"]["client"]

    def key(self, *parts: object) -> str:
        """A namespaced key: `key("auth", "revoked", jti)` → `workspace:auth:revoked:<jti>`."""
        return current_app.extensions["redis_store"]["prefix"] + ":".join(str(p) for p in parts)

    @property
    def embedded(self) -> bool:
        return not current_app.config.get("REDIS_URL")
