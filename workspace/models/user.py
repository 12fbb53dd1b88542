"""Accounts."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ..extensions import db
from .types import UtcDateTime, utcnow


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (see models/sqlite.py)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    # Stored normalised (trimmed, lower-case); uniqueness is on the normalised form.
    email: so.Mapped[str] = so.mapped_column(sa.String(254), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(255))
    created_at: so.Mapped[datetime] = so.mapped_column(UtcDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"
