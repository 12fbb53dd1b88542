"""Where the suite finds PostgreSQL and Redis, and small helpers every tier imports by module name."""

from __future__ import annotations

import os

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def schema_url(base: str, schema: str) -> str:
    """`base` with its search_path pinned to `schema` (each test session migrates a schema of its own)."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
