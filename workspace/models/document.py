"""Co-edited files as Yjs documents: a compacted snapshot plus the updates stored since.

A document is keyed by (project, path) like the file it edits, but outlives it: deleting a file clears the text
through an update and keeps the history, so live editors still holding the old state merge cleanly with whatever
is written at that path next.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ..extensions import db
from .types import UtcDateTime, utcnow

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit id (every keystroke is a row).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Document(db.Model):
    __tablename__ = "documents"
    __table_args__ = (sa.UniqueConstraint("project_id", "path", name="uq_documents_project_path"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"))
    path: so.Mapped[str] = so.mapped_column(sa.String(512))
    # The merged state of every update with id <= snapshot_upto (a Yjs update, v1 encoding); None before the first
    # compaction.
    snapshot: so.Mapped[bytes | None] = so.mapped_column(sa.LargeBinary)
    snapshot_upto: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    # Updates stored since the snapshot: past COEDIT_COMPACT_THRESHOLD a compaction is enqueued.
    update_count: so.Mapped[int] = so.mapped_column(default=0)
    created_at: so.Mapped[datetime] = so.mapped_column(UtcDateTime(), default=utcnow)
    compacted_at: so.Mapped[datetime | None] = so.mapped_column(UtcDateTime())


class DocumentUpdate(db.Model):
    """One accepted Yjs update, exactly as the editor sent it (or as a REST write produced it)."""

    __tablename__ = "document_updates"
    # AUTOINCREMENT on SQLite: compaction deletes the oldest rows, and a reused id below the snapshot's
    # `snapshot_upto` would hide a new update from every loader.
    __table_args__ = (sa.Index("ix_document_updates_document_id", "document_id", "id"), {"sqlite_autoincrement": True})

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True, autoincrement=True)
    document_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("documents.id", ondelete="CASCADE"))
    data: so.Mapped[bytes] = so.mapped_column(sa.LargeBinary)
    user_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: so.Mapped[datetime] = so.mapped_column(UtcDateTime(), default=utcnow)
