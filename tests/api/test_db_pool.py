"""Pooled connections are pinged only after they sat idle (workspace/db_pool.py): a connection PostgreSQL dropped
meanwhile (a restart, an idle timeout) is replaced cleanly instead of failing the request that reuses it."""

from __future__ import annotations

import psycopg2.extensions
import pytest
import sqlalchemy as sa

from workspace.extensions import db


def _backend_pid(app) -> int:
    with app.app_context():
        pid = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
        db.session.remove()  # back into the pool, as at the end of a request
    return pid


def _terminate(database_url: str, pid: int) -> None:
    """Drop the backend from another connection (the app's pool holds only the one being dropped)."""
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_an_idle_connection_postgresql_dropped_is_replaced(make_app, database_url):
    app = make_app(DB_IDLE_PING_SECONDS=0.0)  # every reuse counts as idle: always pinged
    first = _backend_pid(app)
    _terminate(database_url, first)
    assert _backend_pid(app) != first  # the ping failed, the pool reconnected, the query ran


def test_a_connection_used_a_moment_ago_is_reused_without_a_ping(make_app, database_url):
    app = make_app(DB_IDLE_PING_SECONDS=3600.0)  # never idle long enough: never pinged
    first = _backend_pid(app)
    _terminate(database_url, first)
    with pytest.raises(sa.exc.DBAPIError):  # no ping, so the dropped connection is used as is
        _backend_pid(app)


def test_a_pinged_connection_is_handed_out_with_no_transaction_open(make_app):
    """The ping runs in autocommit: what checks the connection out finds it as idle as an unpinged one (the
    co-editing write begins its own transaction only on such a connection)."""
    app = make_app(DB_IDLE_PING_SECONDS=0.0)
    _backend_pid(app)
    with app.app_context():
        dbapi = db.session.connection().connection.dbapi_connection  # checked out again: pinged
        assert dbapi.autocommit is False
        assert dbapi.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        db.session.remove()
