"""Projects: list (one statement for a page and its total), create, read, update, delete.

Every change commits first, then announces what happened (`workspace.events`): the list cache and the realtime
layer subscribe.
"""

from __future__ import annotations

import sqlalchemy as sa

from .. import events
from ..errors import NotFound
from ..extensions import db
from ..models import Membership, Project, ProjectFile, Role
from ..policy import Action, authorize

_COLUMNS = (Project.id, Project.name, Project.description, Membership.role, Project.owner_id, Project.created_at,
            Project.updated_at)


def list_page(user_id: int, page: int, per_page: int) -> dict:
    """The user's projects, newest first, each with the user's role: `{items, page, per_page, total}`.

    One statement: the page (memberships(user_id, project_id) drives the filter and the order, projects join by
    primary key) with the total as an uncorrelated subquery (an index-only count, evaluated once). Only an empty
    page needs a second statement for the total.
    """
    mine = Membership.user_id == user_id
    total = sa.select(sa.func.count()).select_from(Membership).where(mine).scalar_subquery()
    rows = db.session.execute(
        sa.select(*_COLUMNS, total.label("total")).join(Project, Project.id == Membership.project_id)
        .where(mine)
        .order_by(Membership.project_id.desc())
        .limit(per_page).offset((page - 1) * per_page)
    ).mappings().all()
    count = rows[0]["total"] if rows else db.session.scalar(sa.select(total))
    return {"items": [dict(row) for row in rows], "page": page, "per_page": per_page, "total": count}


def create(user_id: int, name: str, description: str = "") -> dict:
    project = Project(name=name.strip(), description=description or "", owner_id=user_id)
    db.session.add(project)
    db.session.flush()
    db.session.add(Membership(project_id=project.id, user_id=user_id, role=Role.OWNER))
    db.session.commit()
    events.announce(events.project_created, project_id=project.id, owner_id=user_id)
    events.announce(events.membership_changed, project_id=project.id, user_id=user_id, role=Role.OWNER.value)
    return _out(project, Role.OWNER)


def get(project_id: int, user_id: int) -> dict:
    role = authorize(project_id, user_id, Action.READ)
    return _out(_project(project_id), role)


def update(project_id: int, user_id: int, changes: dict) -> dict:
    role = authorize(project_id, user_id, Action.MANAGE)
    project = _project(project_id)
    if "name" in changes:
        project.name = changes["name"].strip()
    if "description" in changes:
        project.description = changes["description"] or ""
    if changes:
        db.session.commit()
        events.announce(events.project_updated, project_id=project_id, member_ids=member_ids(project_id))
    return _out(project, role)


def delete(project_id: int, user_id: int) -> None:
    authorize(project_id, user_id, Action.MANAGE)
    # Files and memberships explicitly, jobs and their artifacts by ON DELETE CASCADE (enforced on SQLite too: see
    # models/sqlite.py). The member list comes from
    # the DELETE itself, so a member added concurrently just before cannot be missed by the subscribers.
    db.session.execute(sa.delete(ProjectFile).where(ProjectFile.project_id == project_id))
    members = list(db.session.scalars(sa.delete(Membership).where(Membership.project_id == project_id)
                                      .returning(Membership.user_id)))
    db.session.execute(sa.delete(Project).where(Project.id == project_id))
    db.session.commit()
    events.announce(events.project_deleted, project_id=project_id, member_ids=members)


def member_ids(project_id: int) -> list[int]:
    return list(db.session.scalars(sa.select(Membership.user_id).where(Membership.project_id == project_id)))


def _project(project_id: int) -> Project:
    project = db.session.get(Project, project_id)
    if project is None:  # deleted between the policy check and here
        raise NotFound("Project not found.", code="project_not_found")
    return project


def _out(project: Project, role: Role) -> dict:
    return {"id": project.id, "name": project.name, "description": project.description, "role": role,
            "owner_id": project.owner_id, "created_at": project.created_at, "updated_at": project.updated_at}
