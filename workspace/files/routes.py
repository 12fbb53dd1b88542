"""/api/v1/projects/<id>/files: list, read, create or replace (compare-and-set on `version`), delete.

Paths may contain `/` (`<path:path>`); the rules are in `paths.py`. The logic lives in `service.py`, which the
socket `FILE_CHANGE` handler calls too.
"""

from __future__ import annotations

from flask_jwt_extended import jwt_required
from flask_smorest import Blueprint

from ..auth import current_user_id, current_user_ref
from ..projects.openapi import READ_ERRORS, WRITE_ERRORS, error_responses
from . import service
from .schemas import FileListOut, FileOut, FileSavedOut, FileSaveIn

bp = Blueprint("files", __name__, url_prefix="/api/v1/projects/<int:project_id>/files",
               description="A project's text files, versioned for optimistic concurrency.")


@bp.route("", methods=["GET"])
@jwt_required()
@bp.response(200, FileListOut)
@error_responses(bp, *READ_ERRORS)
def list_files(project_id):
    """Every file of the project (metadata, no content), by path."""
    return {"items": service.list_files(project_id, current_user_id())}


@bp.route("/<path:path>", methods=["GET"])
@jwt_required()
@bp.response(200, FileOut)
@error_responses(bp, *READ_ERRORS)
def get_file(project_id, path):
    """One file with its content and version."""
    return service.get_file(project_id, current_user_id(), path)


@bp.route("/<path:path>", methods=["PUT"])
@jwt_required()
@bp.arguments(FileSaveIn())
@bp.response(200, FileSavedOut, description="Replaced an existing file.")
@bp.alt_response(201, schema=FileSavedOut, description="Created the file.")
@error_responses(bp, *WRITE_ERRORS, 409, 413)
def put_file(body, project_id, path):
    """Create or replace a file (owner, collaborator); broadcasts FILE_CHANGE to the project's room.

    409 `conflict` with `details.current_version` when `base_version` is stale; 422 `invalid_path`; 413
    `file_too_large`.
    """
    saved = service.save_file(project_id, current_user_ref(), path, body["content"], body.get("base_version"))
    return {"path": saved.path, "version": saved.version}, 201 if saved.created else 200


@bp.route("/<path:path>", methods=["DELETE"])
@jwt_required()
@bp.response(204)
@error_responses(bp, *READ_ERRORS, 403, 422)
def delete_file(project_id, path):
    """Delete a file (owner, collaborator); broadcasts FILE_CHANGE with `deleted: true`."""
    service.delete_file(project_id, current_user_ref(), path)
