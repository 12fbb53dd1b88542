"""Outside /api/v1: the root pointer, liveness and readiness."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import jsonify
from flask_smorest import Blueprint
from marshmallow import fields

from .extensions import db, redis_store
from .schemas import BaseSchema

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__, description="Service health.")


class MessageOut(BaseSchema):
    message = fields.String(required=True)


class StatusOut(BaseSchema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String())


@bp.route("/", methods=["GET"])
@bp.response(200, MessageOut)
def root():
    """Where to find the documentation."""
    return {"message": "Go to /docs for API documentation"}


@bp.route("/healthz", methods=["GET"])
@bp.response(200, StatusOut)
def healthz():
    """The process is alive (touches no dependency)."""
    return {"status": "ok"}


def _check(name: str, probe) -> str:
    try:
        probe()
        return "ok"
    except Exception as exc:  # any failure means "not ready"; the log says which and why
        log.warning("readiness check failed: %s: %s", name, exc)
        return "down"


@bp.route("/readyz", methods=["GET"])
@bp.response(200, StatusOut)
@bp.alt_response(503, schema=StatusOut, description="A dependency is down; `checks` names it.")
def readyz():
    """The database and Redis are reachable."""
    checks = {
        "database": _check("database", lambda: db.session.execute(sa.text("SELECT 1"))),
        "redis": _check("redis", lambda: redis_store.client.ping()),
    }
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        db.session.rollback()
        body = {"status": "unavailable", "checks": checks,
                "error": {"code": "dependency_down", "message": f"Unreachable: {', '.join(down)}.",
                          "details": {"down": down}}}
        return jsonify(body), 503
    return {"status": "ok", "checks": checks}
