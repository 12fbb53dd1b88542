"""Files inside a project, versioned for optimistic concurrency."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ..extensions import db
from .types import UtcDateTime, utcnow


class ProjectFile(db.Model):
    __tablename__ = "project_files"
    __table_args__ = (sa.UniqueConstraint("project_id", "path", name="uq_project_files_project_path"),
                      {"sqlite_autoincrement": True})  # ids never reused (see models/sqlite.py)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"))
    path: so.Mapped[str] = so.mapped_column(sa.String(512))
    content: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    # Bumped on every write; a writer's base_version must match it (compare-and-set).
    version: so.Mapped[int] = so.mapped_column(default=1)
    size: so.Mapped[int] = so.mapped_column(default=0)
    updated_at: so.Mapped[datetime] = so.mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    updated_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
