"""Collaborators: list, invite by email, change a role, remove. A project always keeps at least one owner.

The last-owner rule is race-safe: a change that could remove an owner first locks the project's owner rows
(`SELECT ... FOR UPDATE`), so two owners demoting each other at once are serialized and the second one sees a
single owner left. Every committed change announces `events.membership_changed` (role None when removed): the
list cache forgets the user's pages, the realtime layer tells the user and evicts a removed user's sockets.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .. import events
from ..errors import Conflict, NotFound
from ..extensions import db
from ..models import Membership, Role, User
from ..policy import Action, authorize

_COLUMNS = (Membership.user_id, User.email, User.name, Membership.role, Membership.added_at)


def list_members(project_id: int, user_id: int) -> list[dict]:
    authorize(project_id, user_id, Action.READ)
    rows = db.session.execute(
        sa.select(*_COLUMNS).join(User, User.id == Membership.user_id)
        .where(Membership.project_id == project_id)
        .order_by(Membership.added_at, Membership.user_id)
    ).mappings()
    return [dict(row) for row in rows]


def invite(project_id: int, user_id: int, email: str, role: str) -> dict:
    """Add the account with this email; 404 if there is none, 409 if it is already a member."""
    authorize(project_id, user_id, Action.MANAGE)
    user = db.session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound("No account has this email address.", code="user_not_found")
    membership = Membership(project_id=project_id, user_id=user.id, role=Role(role))
    db.session.add(membership)
    try:
        db.session.commit()
    except IntegrityError as exc:  # already a member (or a concurrent invite won)
        db.session.rollback()
        raise Conflict("This user is already a member of the project.", code="already_member") from exc
    _changed(project_id, user.id, membership.role)
    return _out(membership, user)


def change_role(project_id: int, user_id: int, member_id: int, role: str) -> dict:
    authorize(project_id, user_id, Action.MANAGE)
    new_role = Role(role)
    membership = _membership(project_id, member_id)
    if membership.role is Role.OWNER and new_role is not Role.OWNER:
        _keep_an_owner(project_id, "demote")
    membership.role = new_role
    db.session.commit()
    _changed(project_id, member_id, new_role)
    return _out(membership, db.session.get(User, member_id))


def remove(project_id: int, user_id: int, member_id: int) -> None:
    """An owner removes anyone; any member may remove themself. The last owner cannot be removed."""
    authorize(project_id, user_id, Action.READ if member_id == user_id else Action.MANAGE)
    membership = _membership(project_id, member_id)
    if membership.role is Role.OWNER:
        _keep_an_owner(project_id, "remove")
    db.session.delete(membership)
    db.session.commit()
    _changed(project_id, member_id, None)


def make_owner(project_id: int, member_id: int) -> bool:
    """Make the user an owner, adding them if they are not a member; False when they already were one.

    An operator's action (the CLI): there is no acting user to authorize.
    """
    membership = db.session.get(Membership, (project_id, member_id))
    if membership is not None and membership.role is Role.OWNER:
        return False
    if membership is None:
        db.session.add(Membership(project_id=project_id, user_id=member_id, role=Role.OWNER))
    else:
        membership.role = Role.OWNER
    db.session.commit()
    _changed(project_id, member_id, Role.OWNER)
    return True


def _membership(project_id: int, member_id: int) -> Membership:
    membership = db.session.get(Membership, (project_id, member_id))
    if membership is None:
        raise NotFound("This user is not a member of the project.", code="member_not_found")
    return membership


def _keep_an_owner(project_id: int, verb: str) -> None:
    owners = db.session.scalars(
        sa.select(Membership.user_id)
        .where(Membership.project_id == project_id, Membership.role == Role.OWNER)
        .with_for_update()
    ).all()
    if len(owners) <= 1:
        db.session.rollback()
        raise Conflict(f"Cannot {verb} the last owner; make another member owner first.", code="last_owner")


def _changed(project_id: int, member_id: int, role: Role | None) -> None:
    events.announce(events.membership_changed, project_id=project_id, user_id=member_id,
                    role=role.value if role else None)


def _out(membership: Membership, user: User) -> dict:
    return {"user_id": user.id, "email": user.email, "name": user.name, "role": membership.role,
            "added_at": membership.added_at}
