"""The one rule for "may this user do this to this project", used by REST views, socket handlers and jobs.

Non-members get 404 (a project's existence is not revealed); members lacking the role get 403.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from .errors import Forbidden, NotFound
from .extensions import db
from .models import Membership, Role


class Action(StrEnum):
    """What a caller wants to do to a project."""

    READ = "read"  # project, files, status, presence, jobs
    CURSOR = "cursor"  # presence-only realtime updates
    EDIT = "edit"  # change files, run jobs
    MANAGE = "manage"  # update/delete the project, manage collaborators


ALLOWED: dict[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    Role.COLLABORATOR: frozenset({Action.READ, Action.CURSOR, Action.EDIT}),
    Role.VIEWER: frozenset({Action.READ, Action.CURSOR}),
}


def can(role: Role | None, action: Action) -> bool:
    return role is not None and action in ALLOWED[role]


def role_of(project_id: int, user_id: int) -> Role | None:
    """The user's role in the project, or None when not a member (or no such project)."""
    return db.session.scalar(role_select(project_id, user_id))


def role_select(project_id: Any, user_id: Any) -> sa.Select:
    """The query of `role_of` (values or bound parameters), for a statement that reads roles with other things."""
    return sa.select(Membership.role).where(Membership.project_id == project_id, Membership.user_id == user_id)


def authorize(project_id: int, user_id: int, action: Action) -> Role:
    """The caller's role if it allows `action`; NotFound for non-members, Forbidden for too small a role."""
    return require(role_of(project_id, user_id), action)


def require(role: Role | None, action: Action) -> Role:
    """`role` if it allows `action` (as `authorize`, for a role already read)."""
    if role is None:
        raise NotFound("Project not found.", code="project_not_found")
    if not can(role, action):
        raise Forbidden(f"Your role ({role.value}) does not allow this.", details={"role": role.value})
    return role
