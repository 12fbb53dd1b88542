"""Projects and who may do what in them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
import sqlalchemy.orm as so

from ..extensions import db
from .types import UtcDateTime, str_enum, utcnow


class Role(StrEnum):
    """A member's role in one project (see the contract's role table)."""

    OWNER = "owner"
    COLLABORATOR = "collaborator"
    VIEWER = "viewer"


class Project(db.Model):
    __tablename__ = "projects"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (see models/sqlite.py)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(200))
    description: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    # The creator; ownership itself is the memberships with role owner (a project may gain more owners).
    owner_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: so.Mapped[datetime] = so.mapped_column(UtcDateTime(), default=utcnow)
    updated_at: so.Mapped[datetime] = so.mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    memberships: so.WriteOnlyMapped[Membership] = so.relationship(
        back_populates="project", cascade="all, delete-orphan", passive_deletes=True
    )


class Membership(db.Model):
    __tablename__ = "memberships"
    __table_args__ = (
        # The project list reads "all memberships of a user", newest project first.
        sa.Index("ix_memberships_user_project", "user_id", "project_id"),
    )

    project_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: so.Mapped[Role] = so.mapped_column(str_enum(Role))
    added_at: so.Mapped[datetime] = so.mapped_column(UtcDateTime(), default=utcnow)

    project: so.Mapped[Project] = so.relationship(back_populates="memberships")
    user: so.Mapped[User] = so.relationship()  # noqa: F821 - resolved by the registry


from .user import User  # noqa: E402,F401 - registers the relationship target
