"""Hot statements that PostgreSQL plans once per connection, and scripts that send several in one round trip.

Planning the co-editing write's lock-and-read cost PostgreSQL more than running it (0.86 ms against 0.18 ms in
EXPLAIN ANALYZE; 1.3 against 0.76 ms a round trip with the machine otherwise idle between keystrokes, as it is). A
`Statement` is a SQLAlchemy statement compiled twice: as `PREPARE name AS ...` with `$n` parameters, sent the first
time a connection runs it (in the same query string), then `EXECUTE name(...)`; and as plain SQL, for connections
that must not keep server-side state (PgBouncer in transaction mode: DB_PREPARED_STATEMENTS=false). Both take the
values of the statement's parameters by name; psycopg2 quotes them client-side.

Which statements a connection has prepared is kept in its pool entry's `info` (SQLAlchemy clears it when the
connection is replaced). A `Script` marks its statements prepared before it is sent; after any failure its caller
calls `forget`, which the caller's ROLLBACK carries as `DEALLOCATE ALL`, so the mark and the server agree again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import psycopg2 as pg_psycopg2

_NUMBERED = pg_psycopg2.dialect(paramstyle="numeric_dollar")  # PREPARE: $1, $2, ... (a repeated name, one number)
_PLAIN = pg_psycopg2.dialect(paramstyle="format")  # plain SQL: %s at every occurrence
_PREPARED = "workspace.prepared"  # key in the pool entry's info: names of the statements this connection prepared
FORGET = "DEALLOCATE ALL"


class Statement:
    """A SQLAlchemy statement ready to run on a psycopg2 cursor, prepared or plain (see the module doc)."""

    def __init__(self, name: str, statement: sa.Executable) -> None:
        numbered, plain = statement.compile(dialect=_NUMBERED), statement.compile(dialect=_PLAIN)
        self.name = name
        self.statement = statement
        self.defaults = {key: value for key, value in numbered.params.items() if value is not None}
        self._numbered = list(numbered.positiontup or ())
        self._plain_names = list(plain.positiontup or ())
        self._prepare = f"PREPARE {name} AS {numbered.string}"
        placeholders = ", ".join(["%s"] * len(self._numbered))
        self._execute = f"EXECUTE {name}({placeholders})" if self._numbered else f"EXECUTE {name}"
        self._plain = plain.string  # SQLAlchemy doubled its literal percent signs for this style already

    def parts(self, params: Mapping[str, Any], prepared: set[str] | None) -> tuple[list[str], list[Any]]:
        """SQL parts (with %s placeholders) and their values: EXECUTE (after a PREPARE, the first time on the
        connection whose `prepared` names are given) or, with `prepared` None, the plain statement."""
        values = {**self.defaults, **params}
        if prepared is None:
            return [self._plain], [values[name] for name in self._plain_names]
        sql = [self._execute]
        if self.name not in prepared:
            prepared.add(self.name)
            sql.insert(0, self._prepare.replace("%", "%%"))
        return sql, [values[name] for name in self._numbered]


def prepared_names(info: dict, enabled: bool) -> set[str] | None:
    """The statements prepared on the connection whose pool entry `info` is given (None: use plain SQL)."""
    return info.setdefault(_PREPARED, set()) if enabled else None


def forget(info: dict) -> str:
    """After a failure: the statement that drops this connection's prepared statements ("" when it has none); the
    marks are dropped now."""
    prepared = info.pop(_PREPARED, None)
    return FORGET if prepared else ""


class Script:
    """Statements sent as one query string: one round trip; psycopg2 returns the LAST statement's rows."""

    def __init__(self, prepared: set[str] | None) -> None:
        self.prepared = prepared
        self.sql: list[str] = []
        self.values: list[Any] = []

    def add(self, statement: Statement | str, params: Mapping[str, Any] | None = None) -> Script:
        if isinstance(statement, str):
            self.sql.append(statement.replace("%", "%%"))
        else:
            sql, values = statement.parts(params or {}, self.prepared)
            self.sql += sql
            self.values += values
        return self

    def run(self, cursor: Any) -> list[tuple] | None:
        """Send the script on a psycopg2 cursor: the last statement's rows (None when it returns none)."""
        cursor.execute(";\n".join(self.sql), self.values)
        return cursor.fetchall() if cursor.description is not None else None
