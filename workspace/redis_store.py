"""The Redis connection every feature shares, or an in-process stand-in when REDIS_URL is unset.

Embedded mode uses fakeredis (a real Redis command implementation in memory) rather than hand-written dicts, so
cache, revocation, presence and sequence numbers run the same code with or without a Redis server (with lupa,
fakeredis runs the Lua scripts too).

The pools wait for a free connection (`BlockingConnectionPool`, up to REDIS_POOL_TIMEOUT seconds) instead of
failing with "Too many connections" once REDIS_MAX_CONNECTIONS are in use: a burst of socket events queues for a
moment rather than turning into `service_unavailable` acks for everyone in the process.

Best-effort writes (metrics) made while a domain event is announced ride along with the round trip that announces
it (`batch`), instead of costing one of their own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import fakeredis
import redis
from flask import Flask, current_app

log = logging.getLogger(__name__)

# One in-memory "server" per process, shared by every app instance in it (as a real Redis would be).
_EMBEDDED_SERVER = fakeredis.FakeServer()
# The best-effort writes waiting for this thread's next round trip (None: no batch open). Green under eventlet/gevent.
_later = threading.local()


def blocking_pool(app: Flask, url: str, **options) -> redis.BlockingConnectionPool:
    """A connection pool for `url` that waits for a free connection, sized and timed by the app's settings."""
    return redis.BlockingConnectionPool.from_url(
        url, max_connections=app.config["REDIS_MAX_CONNECTIONS"], timeout=app.config["REDIS_POOL_TIMEOUT"],
        socket_timeout=2, socket_connect_timeout=2, **options)


class _Batch:
    """`RedisStore.batch()`'s context manager: a class, not a generator, as every domain event opens one."""

    __slots__ = ("store", "outermost")

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.outermost = False

    def __enter__(self) -> None:
        if getattr(_later, "writes", None) is None:
            _later.writes = []
            self.outermost = True

    def __exit__(self, *exc_info: object) -> None:
        if not self.outermost:
            return
        writes, _later.writes = _later.writes, None
        if writes:
            try:
                self.store.write(writes)
            except redis.RedisError as exc:
                log.debug("best-effort writes lost: %s", exc)


class RedisStore:
    """Flask extension holding the Redis client and the key prefix."""

    def init_app(self, app: Flask) -> None:
        url = app.config.get("REDIS_URL")
        if url:
            client = redis.Redis(connection_pool=blocking_pool(app, url, health_check_interval=30,
                                                               decode_responses=True))
        else:
            client = fakeredis.FakeRedis(server=_EMBEDDED_SERVER, decode_responses=True)
        app.extensions["redis_store"] = {"client": client, "prefix": app.config["REDIS_KEY_PREFIX"],
                                         "direct": bool(url)}

    @property
    def client(self) -> redis.Redis:
        return current_app.extensions["redis_store"]["client"]

    def command(self, *args: object) -> Any:
        """One command's raw reply (no response callback: for commands that have none, such as MGET and EXISTS),
        sent on a pooled connection directly. redis-py's layers around a command (retry wrapper, argument checks,
        observability hooks) cost about a third of the CPU of a one-command round trip here, on the path every
        authenticated request takes. A connection that fails is dropped and the command goes through the client,
        whose retry reconnects; the embedded stand-in always goes through the client."""
        store = current_app.extensions["redis_store"]
        client = store["client"]
        if not store["direct"]:
            return client.execute_command(*args)
        pool = client.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command(*args)
            return conn.read_response()
        except (redis.ConnectionError, redis.TimeoutError):
            conn.disconnect()
        finally:
            pool.release(conn)
        return client.execute_command(*args)

    @property
    def prefix(self) -> str:
        return current_app.extensions["redis_store"]["prefix"]

    def key(self, *parts: object) -> str:
        """A namespaced key: `key("auth", "revoked", jti)` → `workspace:auth:revoked:<jti>`."""
        return current_app.extensions["redis_store"]["prefix"] + ":".join(map(str, parts))

    @property
    def embedded(self) -> bool:
        return not current_app.config.get("REDIS_URL")

    def batch(self) -> _Batch:
        """Best-effort writes queued meanwhile (`later`) go out with the first round trip that takes them
        (`take_later`), or together in one pipeline when the block ends. Nested blocks are one batch."""
        return _Batch(self)

    def later(self, write: Callable[[redis.client.Pipeline], None]) -> bool:
        """Queue a best-effort write (commands issued on the pipeline it is given) in the open batch; False when
        none is open (the caller writes now)."""
        writes = getattr(_later, "writes", None)
        if writes is None:
            return False
        writes.append(write)
        return True

    def take_later(self) -> list[Callable[[redis.client.Pipeline], None]]:
        """The queued best-effort writes, for a round trip that sends them along (its pipeline ignores their errors)."""
        writes = getattr(_later, "writes", None)
        if not writes:
            return []
        _later.writes = []
        return writes

    def write(self, writes: list[Callable[[redis.client.Pipeline], None]]) -> None:
        """Run best-effort writes now, in one pipeline (their errors are the caller's to ignore)."""
        pipe = self.client.pipeline(transaction=False)
        for write in writes:
            write(pipe)
        pipe.execute()
