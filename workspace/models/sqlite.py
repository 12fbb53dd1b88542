"""SQLite (the embedded mode) made to keep the same promises as PostgreSQL.

SQLite leaves foreign keys unenforced unless each connection asks, and reuses the ids of deleted rows unless a table
is declared AUTOINCREMENT. Both together let a deleted project's jobs and export artifacts outlive it and reappear
under the next project created with the same id, owned by someone else. So: `PRAGMA foreign_keys=ON` on every new
SQLite connection (ON DELETE CASCADE then works as on PostgreSQL), and `sqlite_autoincrement=True` on the tables
whose ids are handed out (users, projects, files, jobs; migration 0005 rebuilds existing embedded databases).
Migrations turn the pragma off for their own connection (migrations/env.py): rebuilding a table must not cascade.
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa


@sa.event.listens_for(sa.engine.Engine, "connect")
def _foreign_keys_on(dbapi_connection, _record) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
