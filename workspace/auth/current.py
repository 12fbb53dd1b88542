"""Who is calling: the identity of the verified access token (never anything the client asserts)."""

from __future__ import annotations

from flask_jwt_extended import get_jwt


def current_user_id() -> int:
    """The caller's user id; only valid inside a view guarded by `jwt_required()`."""
    return int(get_jwt()["sub"])


def current_user_ref() -> dict:
    """`{id, name}` of the caller, as events carry it, read from the token without a query."""
    claims = get_jwt()
    return {"id": int(claims["sub"]), "name": claims.get("name", "")}
