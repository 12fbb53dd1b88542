"""/api/v1/auth: signup, login, refresh, logout, me."""

from __future__ import annotations

from flask import current_app
from flask_jwt_extended import get_jwt, jwt_required
from flask_smorest import Blueprint

from ..errors import Unauthorized
from ..extensions import db, limiter
from ..models import User
from . import service, tokens
from .attempts import announced
from .schemas import LoginIn, LogoutIn, SignupIn, SignupOut, TokenPairOut, UserOut

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Accounts and tokens.")


def auth_rate_limit() -> str:
    return current_app.config["AUTH_RATE_LIMIT"]


@bp.route("/signup", methods=["POST"])
@announced("signup")
@limiter.limit(auth_rate_limit)
@bp.arguments(SignupIn())
@bp.response(201, SignupOut)
@bp.alt_response(409, description="Email already registered.")
@bp.alt_response(429, description="Rate limited.")
def signup(body):
    """Create an account and log it in."""
    user = service.signup(body["email"], body["password"], body.get("name"))
    return {"user": user, **tokens.issue_pair(user)}


@bp.route("/login", methods=["POST"])
@announced("login")
@limiter.limit(auth_rate_limit)
@bp.arguments(LoginIn())
@bp.response(200, TokenPairOut)
@bp.alt_response(401, description="Email or password is incorrect.")
@bp.alt_response(429, description="Rate limited.")
def login(body):
    """Exchange email and password for an access and a refresh token."""
    return tokens.issue_pair(service.authenticate(body["email"], body["password"]))


@bp.route("/refresh", methods=["POST"])
@announced("refresh")
@limiter.limit(auth_rate_limit)
@jwt_required(refresh=True)
@bp.response(200, TokenPairOut)
@bp.alt_response(401, description="Refresh token missing, expired, revoked or re-used.")
@bp.alt_response(429, description="Rate limited.")
def refresh():
    """Spend the refresh token in the Bearer header for a new pair (the old refresh token is revoked)."""
    return tokens.rotate(get_jwt())


@bp.route("/logout", methods=["POST"])
@announced("logout")
@jwt_required()
@bp.arguments(LogoutIn(), required=False)
@bp.response(204)
@bp.alt_response(401, description="Not authenticated.")
def logout(body):
    """Revoke the access token in use (always) and the given refresh token's whole session."""
    tokens.logout(get_jwt(), (body or {}).get("refresh_token"))


@bp.route("/me", methods=["GET"])
@jwt_required()
@bp.response(200, UserOut)
@bp.alt_response(401, description="Not authenticated.")
def me():
    """The account behind the access token."""
    return db.session.get(User, int(get_jwt()["sub"])) or _gone()


def _gone():
    raise Unauthorized("The account behind this token no longer exists.", code="invalid_token")
