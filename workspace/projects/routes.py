"""/api/v1/projects: list (cached per user and page), create, get, update (PUT and PATCH), delete."""

from __future__ import annotations

import json

from flask import Response, request
from flask_jwt_extended import jwt_required
from flask_smorest import Blueprint

from .. import events
from ..auth import current_user_id, tokens
from ..schemas import PageArgs
from . import cache, service
from .openapi import READ_ERRORS, WRITE_ERRORS, error_responses
from .schemas import ProjectIn, ProjectOut, ProjectPageOut, ProjectUpdateIn

bp = Blueprint("projects", __name__, url_prefix="/api/v1/projects",
               description="Projects the caller is a member of; owners update and delete them.")
_page_schema = ProjectPageOut()
_PAGE_ARGS = PageArgs()
X_CACHE = {"X-Cache": {"description": "HIT: served from the Redis cache; MISS: read from the database.",
                      "schema": {"type": "string", "enum": ["HIT", "MISS"]}}}


def _cache_keys(claims: dict) -> tuple[str, ...]:
    """The cache keys of the page asked for, read with the token's revocation check (before the arguments are
    validated: from the raw query; the view only uses them when they match the validated arguments)."""
    if not cache.enabled():
        return ()
    args = _PAGE_ARGS.load_query(request.args)  # None: not plain in-range numbers; the view then reads on its own
    return cache.keys(int(claims["sub"]), args["page"], args["per_page"]) if args else ()


@bp.route("/", methods=["GET"])
@jwt_required()
@bp.arguments(_PAGE_ARGS, location="query")
@bp.response(200, ProjectPageOut, headers=X_CACHE)
@error_responses(bp, 401, 422, 503)
@tokens.read_with_revocation_check(_cache_keys)
def list_projects(args):
    """The caller's projects, newest first, with the caller's role in each.

    Served from a per-user Redis cache when warm (`X-Cache: HIT`); `Cache-Control: no-cache` forces a fresh read.
    """
    user_id, page, per_page = current_user_id(), args["page"], args["per_page"]
    if not cache.enabled():
        return _json(_fresh_page(user_id, page, per_page), "MISS")
    generation, body = cache.lookup(user_id, page, per_page, tokens.prefetched(cache.keys(user_id, page, per_page)))
    if body is not None and "no-cache" not in request.headers.get("Cache-Control", ""):
        events.announce(events.project_list_looked_up, hit=True)
        return _json(body, "HIT")
    events.announce(events.project_list_looked_up, hit=False)
    body = _fresh_page(user_id, page, per_page)
    cache.store(user_id, page, per_page, generation, body)
    return _json(body, "MISS")


def _fresh_page(user_id: int, page: int, per_page: int) -> str:
    return json.dumps(_page_schema.dump(service.list_page(user_id, page, per_page)), separators=(",", ":"))


def _json(body: str, cache_state: str) -> Response:
    return Response(body, status=200, mimetype="application/json", headers={"X-Cache": cache_state})


@bp.route("/", methods=["POST"])
@jwt_required()
@bp.arguments(ProjectIn())
@bp.response(201, ProjectOut)
@error_responses(bp, 400, 401, 415, 422, 503)
def create_project(body):
    """Create a project; the caller becomes its owner."""
    return service.create(current_user_id(), body["name"], body.get("description", ""))


@bp.route("/<int:project_id>", methods=["GET"])
@jwt_required()
@bp.response(200, ProjectOut)
@error_responses(bp, *READ_ERRORS)
def get_project(project_id):
    """One project, with the caller's role in it."""
    return service.get(project_id, current_user_id())


@bp.route("/<int:project_id>", methods=["PUT", "PATCH"])
@jwt_required()
@bp.arguments(ProjectUpdateIn())
@bp.response(200, ProjectOut)
@error_responses(bp, *WRITE_ERRORS)
def update_project(body, project_id):
    """Change the name and/or description (owner only). PUT and PATCH both replace only the fields given."""
    return service.update(project_id, current_user_id(), body)


@bp.route("/<int:project_id>", methods=["DELETE"])
@jwt_required()
@bp.response(204)
@error_responses(bp, *READ_ERRORS, 403)
def delete_project(project_id):
    """Delete the project with its files and memberships (owner only); every member is notified."""
    service.delete(project_id, current_user_id())
