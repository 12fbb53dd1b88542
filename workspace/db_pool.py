"""Pooled database connections are checked before use only after they sat idle, not on every transaction.

`pool_pre_ping` costs a PostgreSQL round trip per checkout, i.e. per request on the web and several times per job in
the worker; a connection used a moment ago is alive. This is SQLAlchemy's "pessimistic disconnect handling, custom"
recipe: a connection idle for DB_IDLE_PING_SECONDS or more gets a `SELECT 1` first, and a failed ping raises
DisconnectionError, so the pool replaces it (after a PostgreSQL restart every pooled connection is idle by the time it
is reused, and gets the same clean replacement pool_pre_ping gave).
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from flask import Flask

from .extensions import db


def init_app(app: Flask) -> None:
    """Install the idle-only ping on the app's engine, unless pool_pre_ping (a ping every checkout) is configured."""
    if app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("pool_pre_ping"):
        return
    with app.app_context():
        ping_only_after_idle(db.engine, app.config["DB_IDLE_PING_SECONDS"])


def ping_only_after_idle(engine: sa.Engine, idle_seconds: float) -> None:
    """Check a pooled connection at checkout only when it sat idle for `idle_seconds` (see the module docstring)."""

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < idle_seconds:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        except Exception as exc:
            raise sa.exc.DisconnectionError() from exc
