"""/api/v1/projects/<id>/collaborators: list, invite by email, change a role, remove."""

from __future__ import annotations

from flask_jwt_extended import jwt_required
from flask_smorest import Blueprint

from ..auth import current_user_id
from . import members
from .openapi import READ_ERRORS, WRITE_ERRORS, error_responses
from .schemas import CollaboratorIn, CollaboratorListOut, CollaboratorOut, RoleIn

bp = Blueprint("collaborators", __name__, url_prefix="/api/v1/projects/<int:project_id>/collaborators",
               description="Who is in a project and with which role; owners manage them.")


@bp.route("", methods=["GET"])
@jwt_required()
@bp.response(200, CollaboratorListOut)
@error_responses(bp, *READ_ERRORS)
def list_collaborators(project_id):
    """Every member of the project with their role."""
    return {"items": members.list_members(project_id, current_user_id())}


@bp.route("", methods=["POST"])
@jwt_required()
@bp.arguments(CollaboratorIn())
@bp.response(201, CollaboratorOut)
@error_responses(bp, *WRITE_ERRORS, 409)
def invite_collaborator(body, project_id):
    """Add an existing account by email as collaborator or viewer (owner only). 404 `user_not_found` for an
    unknown email, 409 `already_member`."""
    return members.invite(project_id, current_user_id(), body["email"], body["role"])


@bp.route("/<int:user_id>", methods=["PATCH"])
@jwt_required()
@bp.arguments(RoleIn())
@bp.response(200, CollaboratorOut)
@error_responses(bp, *WRITE_ERRORS, 409)
def change_role(body, project_id, user_id):
    """Change a member's role (owner only). 409 `last_owner` when it would leave the project without an owner."""
    return members.change_role(project_id, current_user_id(), user_id, body["role"])


@bp.route("/<int:user_id>", methods=["DELETE"])
@jwt_required()
@bp.response(204)
@error_responses(bp, *READ_ERRORS, 403, 409)
def remove_collaborator(project_id, user_id):
    """Remove a member (owner), or leave the project (any member, their own user_id). 409 `last_owner` for the
    last owner. The removed member's sockets leave the project's room at once."""
    members.remove(project_id, current_user_id(), user_id)
