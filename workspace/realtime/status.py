"""`GET /api/v1/projects/<id>/workspace/status`: who is online (on any process), file count, recent activity."""

from __future__ import annotations

import redis
from flask_jwt_extended import jwt_required
from flask_smorest import Blueprint
from marshmallow import fields

from ..auth import current_user_id
from ..errors import ServiceUnavailable
from ..files import service as files
from ..policy import Action, authorize
from ..schemas import BaseSchema
from . import activity, presence

bp = Blueprint("workspace_status", __name__, url_prefix="/api/v1/projects",
               description="Live state of a project's workspace.")


class OnlineUserOut(BaseSchema):
    user_id = fields.Integer(required=True)
    name = fields.String(required=True)
    since = fields.String(required=True, metadata={"description": "When the user's first open socket joined."})


class WorkspaceStatusOut(BaseSchema):
    project_id = fields.Integer(required=True)
    online = fields.List(fields.Nested(OnlineUserOut), required=True)
    online_count = fields.Integer(required=True)
    file_count = fields.Integer(required=True)
    last_activity_at = fields.String(allow_none=True, required=True)
    recent_events = fields.List(fields.Dict(), required=True, metadata={
        "description": "Newest first, at most 50: {event, seq, at, user?, path?, version?, deleted?, job_id?, "
                       "status?}. Cursor moves are not recorded; file contents are left out."})


@bp.route("/<int:project_id>/workspace/status", methods=["GET"])
@bp.response(200, WorkspaceStatusOut)
@bp.alt_response(404, description="Not a member, or no such project.")
@bp.alt_response(503, description="Redis (presence) unreachable.")
@jwt_required()
def workspace_status(project_id: int):
    """Presence across all server processes, file count, last activity and the recent room events."""
    authorize(project_id, current_user_id(), Action.READ)
    try:
        online = presence.online(project_id)
        last_event_at, recent = activity.last_activity_at(project_id), activity.recent(project_id)
    except redis.RedisError as exc:
        raise ServiceUnavailable("Presence store unavailable; try again shortly.") from exc
    stats = files.file_stats(project_id)
    times = [t for t in (last_event_at, stats.last_updated_at.isoformat() if stats.last_updated_at else None) if t]
    return {
        "project_id": project_id,
        "online": online,
        "online_count": len(online),
        "file_count": stats.count,
        "last_activity_at": max(times) if times else None,
        "recent_events": recent,
    }
