"""Pooled database connections are checked before use only after they sat idle, not on every transaction.

`pool_pre_ping` costs a PostgreSQL round trip per checkout, i.e. per request on the web and several times per job in
the worker; a connection used a moment ago is alive. This is SQLAlchemy's "pessimistic disconnect handling, custom"
recipe: a connection idle for DB_IDLE_PING_SECONDS or more gets a `SELECT 1` first, and a failed ping raises
DisconnectionError, so the pool replaces it (after a PostgreSQL restart every pooled connection is idle by the time it
is reused, and gets the same clean replacement pool_pre_ping gave).

Single-statement writes on the job path (a job's claim and completion) skip SQLAlchemy's execution layer and run as
plain SQL in autocommit: on a `HeldConnection` in the worker, on a pooled connection elsewhere.
"""

from __future__ import annotations

import os
import time

import sqlalchemy as sa
from flask import Flask

from .extensions import db


def init_app(app: Flask) -> None:
    """Bound lock waits on PostgreSQL; install the idle-only ping on the app's engine, unless pool_pre_ping (a ping
    every checkout) is configured."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql" and app.config["DB_LOCK_TIMEOUT_MS"] > 0:
            limit_lock_waits(db.engine, app.config["DB_LOCK_TIMEOUT_MS"])
        if not app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("pool_pre_ping"):
            ping_only_after_idle(db.engine, app.config["DB_IDLE_PING_SECONDS"])


def limit_lock_waits(engine: sa.Engine, milliseconds: int) -> None:
    """Every new connection waits at most `milliseconds` for a lock, then fails with LockNotAvailable (mapped to
    503 by the error handlers). Set per session when the connection opens, not as a startup `options` parameter,
    which connection poolers such as PgBouncer refuse."""

    @sa.event.listens_for(engine, "connect", insert=True)
    def _connected(dbapi_connection, record) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # a SET outside any transaction, so nothing is left open
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = %s", (int(milliseconds),))
        dbapi_connection.autocommit = autocommit


def ping_only_after_idle(engine: sa.Engine, idle_seconds: float) -> None:
    """Check a pooled connection at checkout only when it sat idle for `idle_seconds` (see the module docstring)."""

    postgresql = engine.dialect.name == "postgresql"

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < idle_seconds:
            return
        try:
            # PostgreSQL: in autocommit, so the connection is handed out with no transaction open, as an unpinged
            # one is (the co-editing write begins its own in its first query string: documents.store).
            autocommit = dbapi_connection.autocommit if postgresql else None
            if postgresql:
                dbapi_connection.autocommit = True
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            if autocommit is not None:
                dbapi_connection.autocommit = autocommit
        except Exception as exc:
            raise sa.exc.DisconnectionError() from exc


class HeldConnection:
    """One autocommit DB-API connection kept by a process that writes from one thread (the RQ worker's job loop), for
    its single-statement writes: no pool checkout and checkin per statement, no isolation level switched to
    autocommit and back (SQLAlchemy resets it on every checkin). It is checked as the pool checks its connections:
    pinged first when it sat idle for `idle_seconds` or more, replaced when the ping fails or a statement finds it
    closed. A forked child never uses its parent's socket: it opens its own.
    """

    def __init__(self, engine: sa.Engine, idle_seconds: float) -> None:
        self.engine = engine
        self.idle_seconds = idle_seconds
        self._fairy = None  # SQLAlchemy's checked-out connection: invalidate() closes and forgets it
        self._pid = 0
        self._used = 0.0

    def fetchone(self, sql: str, params: dict) -> tuple | None:
        """Run one statement in autocommit; its first row (None when it returned none)."""
        connection = self._connection()
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone()
        except self.engine.dialect.loaded_dbapi.Error:
            if connection.closed:
                self.close()
            raise
        finally:
            self._used = time.monotonic()

    def close(self) -> None:
        if self._fairy is not None and self._pid == os.getpid():
            self._fairy.invalidate()
        self._fairy = None

    def _connection(self):
        if self._pid != os.getpid():
            self._fairy = None  # the parent's connection: left to the parent, never closed from here
        elif self._fairy is not None and time.monotonic() - self._used >= self.idle_seconds and not self._ping():
            self.close()
        if self._fairy is None:
            self._fairy = self.engine.raw_connection()  # checked out for good; its checkout ping ran
            self._fairy.driver_connection.rollback()  # ends the ping's transaction, if it ran one
            self._fairy.driver_connection.autocommit = True
            self._pid = os.getpid()
        return self._fairy.driver_connection

    def _ping(self) -> bool:
        try:
            with self._fairy.driver_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except self.engine.dialect.loaded_dbapi.Error:
            return False


def fetchone_autocommit(engine: sa.Engine, sql: str, params: dict) -> tuple | None:
    """`HeldConnection.fetchone` on a connection checked out of the pool for this one statement (any thread)."""
    fairy = engine.raw_connection()
    connection = fairy.driver_connection
    try:
        connection.rollback()  # ends the checkout ping's transaction, if it ran one (no round trip otherwise)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    finally:
        if connection.closed:
            fairy.invalidate()  # the statement found it disconnected: not back into the pool
        else:
            connection.autocommit = False
            fairy.close()  # back to the pool as it came out
