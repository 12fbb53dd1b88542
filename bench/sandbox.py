"""Clean-up shared by the benchmarks: each runs in its own PostgreSQL schema and Redis key prefix."""

from __future__ import annotations

import os
import uuid

import redis
import sqlalchemy as sa


def open_sandbox(pg_url: str, redis_url: str, **extra: str) -> tuple[sa.Engine, str, str, dict[str, str]]:
    """A fresh schema and Redis prefix, and the environment of a web process confined to them (rate limits off,
    long tokens, quiet logs; `extra` adds or overrides variables): (engine, schema, prefix, env)."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    schema_url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
    env = {**os.environ, "APP_ENV": "testing", "DATABASE_URL": schema_url, "REDIS_URL": redis_url,
           "REDIS_KEY_PREFIX": prefix, "SOCKETIO_CHANNEL": prefix + "socketio", "RQ_QUEUE": prefix + "jobs",
           "SECRET_KEY": "bench-secret-" + prefix, "JWT_SECRET_KEY": "bench-jwt-secret-" + prefix,
           "RATELIMIT_ENABLED": "false", "SOCKET_EVENT_RATE_PER_SECOND": "1000000", "ACCESS_TOKEN_MINUTES": "600",
           "LOG_LEVEL": "warning", "SHUTDOWN_DRAIN_SECONDS": "1", **extra}
    return engine, schema, prefix, env


def drop_sandbox(engine: sa.Engine, schema: str, redis_url: str, prefix: str) -> None:
    """Drop the benchmark's schema and delete its Redis keys, then release the engine."""
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        conn.commit()
    engine.dispose()
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
