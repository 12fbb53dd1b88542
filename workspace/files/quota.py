"""Per-project storage quotas: how many files a project may hold and how many bytes they may total.

`check_write` is the one check every file write makes (REST PUT, socket FILE_CHANGE and co-editing updates all end
in the document store writing the file row, which calls it in its transaction). It serialises the project's
writes on a transaction-scoped lock (a PostgreSQL advisory lock; SQLite writes are serialised already), so two
concurrent creations cannot both slip under the limit. A write that does not grow the project always passes, so a
project left over a lowered quota can still shrink.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from ..errors import PayloadTooLarge
from ..extensions import db
from ..models import ProjectFile

# First key of the advisory lock: this lock's namespace, so it never collides with another advisory lock's ids.
_LOCK_NAMESPACE = 0x51F0
# Built once: every file write runs them, co-editing several times a second per document.
_files = ProjectFile.__table__


def lock_of(project_id: sa.ColumnElement) -> sa.ColumnElement:
    """The SQL that takes the project's quota lock (PostgreSQL), for a statement that takes it with other work."""
    return sa.func.pg_advisory_xact_lock(_LOCK_NAMESPACE, project_id)


_LOCK = sa.select(lock_of(sa.bindparam("project_id")))
USAGE = (sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(_files.c.size), 0),
                    sa.func.max(sa.case((_files.c.path == sa.bindparam("path"), _files.c.size))))
          .where(_files.c.project_id == sa.bindparam("project_id")))


def enabled() -> bool:
    return bool(current_app.config["MAX_FILES_PER_PROJECT"] or current_app.config["MAX_PROJECT_BYTES"])


def check_write(project_id: int, path: str, new_size: int, locked: bool = False,
                usage: tuple[int, int, int | None] | None = None) -> None:
    """Raise PayloadTooLarge (413) when writing `new_size` bytes at `path` would take the project past its file
    count (a new path) or byte total; call it inside the write's transaction, before the row is written.
    `locked`: the transaction already took the project's lock (`lock_of`); `usage`: the row of `USAGE` (files,
    bytes, this path's bytes) when the caller read it after taking that lock."""
    if not enabled():
        return
    max_files = current_app.config["MAX_FILES_PER_PROJECT"]
    max_bytes = current_app.config["MAX_PROJECT_BYTES"]
    connection = db.session.connection()
    if connection.dialect.name == "postgresql" and not locked and usage is None:
        connection.execute(_LOCK, {"project_id": project_id})
    if usage is None:
        usage = connection.execute(USAGE, {"project_id": project_id, "path": path}).one()
    count, total, current = usage
    if current is None and max_files and count >= max_files:
        raise PayloadTooLarge(f"This project already holds {count} files; the limit is {max_files}.",
                              code="file_quota_exceeded", details={"files": count, "max_files": max_files})
    after = total - (current or 0) + new_size
    if max_bytes and after > max_bytes and new_size > (current or 0):
        raise PayloadTooLarge(f"This write would bring the project to {after} bytes; the limit is {max_bytes}.",
                              code="storage_quota_exceeded", details={"bytes": after, "max_bytes": max_bytes})
