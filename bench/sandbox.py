"""Clean-up shared by the benchmarks: each runs in its own PostgreSQL schema and Redis key prefix."""

from __future__ import annotations

import redis
import sqlalchemy as sa


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
