"""Access and refresh tokens: issuing, rotation with family revocation, and the Redis-backed blocklist.

Every token carries a `fam` claim naming its login family. Refreshing marks the used refresh token revoked and
issues a new pair in the same family; presenting a revoked refresh token again (a sign it was stolen) revokes the
whole family, so both the thief's and the owner's tokens stop working.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import redis
from flask import Flask, current_app, g, request
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token

from .. import events
from ..errors import ServiceUnavailable, Unauthorized, error_response
from ..extensions import db, jwt, redis_store
from ..models import User

log = logging.getLogger(__name__)


def _ttl(payload: dict[str, Any]) -> int:
    """Seconds until the token expires anyway; its revocation record need not outlive it."""
    return max(int(payload.get("exp", time.time()) - time.time()) + 1, 1)


def issue_pair(user: User, family: str | None = None) -> dict[str, Any]:
    """A new access + refresh token pair for `user` in `family` (a new family at login)."""
    family = family or uuid.uuid4().hex
    claims = {"fam": family}
    access = create_access_token(identity=str(user.id), additional_claims={**claims, "name": user.name})
    refresh = create_refresh_token(identity=str(user.id), additional_claims=claims)
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": current_app.config["ACCESS_TOKEN_MINUTES"] * 60,
    }


def _redis_call(fn):
    try:
        return fn(redis_store.client)
    except redis.RedisError as exc:
        # Fail closed: accepting a token we cannot check could accept one its owner logged out.
        log.warning("token revocation store unreachable: %s", exc)
        raise ServiceUnavailable("Token revocation store unavailable; try again shortly.") from exc


def revoke(payload: dict[str, Any], reason: str = "logout") -> None:
    """Revoke one token (by jti) until it expires; its open sockets are told (`events.tokens_revoked`)."""
    _redis_call(lambda r: r.set(redis_store.key("auth", "revoked", payload["jti"]), "1", ex=_ttl(payload)))
    events.announce(events.tokens_revoked, user_id=int(payload["sub"]), jtis=[payload["jti"]], family=None,
                    reason=reason)


def revoke_family(payload: dict[str, Any], reason: str = "refresh_token_reused") -> None:
    """Revoke every token of `payload`'s family, for as long as a refresh token of it could live; the family's
    open sockets are told (`events.tokens_revoked`)."""
    if not payload.get("fam"):
        return
    ttl = current_app.config["REFRESH_TOKEN_DAYS"] * 86400
    _redis_call(lambda r: r.set(redis_store.key("auth", "family", payload["fam"]), "1", ex=ttl))
    log.warning("token family revoked", extra={"user_id": payload.get("sub"), "family": payload["fam"]})
    events.announce(events.tokens_revoked, user_id=int(payload["sub"]), jtis=[], family=payload["fam"],
                    reason=reason)


def _revocation_keys(payload: dict[str, Any]) -> list[str]:
    keys = [redis_store.key("auth", "revoked", payload["jti"])]
    if payload.get("fam"):
        keys.append(redis_store.key("auth", "family", payload["fam"]))
    return keys


def is_revoked(payload: dict[str, Any]) -> bool:
    return bool(_redis_call(lambda _: redis_store.command("EXISTS", *_revocation_keys(payload))))


def read_with_revocation_check(keys_for: Callable[[dict[str, Any]], Sequence[str]]):
    """View decorator (nearest the function, under `jwt_required()`): the Redis keys `keys_for(claims)` names are
    read in the same round trip as the token's revocation check, so a view that needs Redis anyway spends one round
    trip, not two. The view reads them with `prefetched(keys)`; the check itself is unchanged (same place, same
    errors, fails closed)."""
    def mark(view):
        view.revocation_prefetch = keys_for
        return view
    return mark


def prefetched(keys: Sequence[str]) -> list[str | None] | None:
    """The values of `keys` read with this request's revocation check, or None when they were not all read."""
    values = g.get("_revocation_prefetched")
    if values is None or any(key not in values for key in keys):
        return None
    return [values[key] for key in keys]


def _check_and_prefetch(payload: dict[str, Any]) -> bool:
    """The blocklist check of a request's token: one EXISTS, or one MGET with the keys its view asked for."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    keys_for = getattr(view, "revocation_prefetch", None)
    extra = keys_for(payload) if keys_for else []
    if not extra:
        return is_revoked(payload)
    keys = _revocation_keys(payload)
    values = _redis_call(lambda _: redis_store.command("MGET", *keys, *extra))
    g._revocation_prefetched = dict(zip(extra, values[len(keys):], strict=True))
    return any(values[:len(keys)])


def rotate(refresh_payload: dict[str, Any]) -> dict[str, Any]:
    """Spend a refresh token and return the next pair; a second spend (a race or a replay) revokes the family."""
    first_use = _redis_call(lambda r: r.set(
        redis_store.key("auth", "revoked", refresh_payload["jti"]), "rotated", nx=True, ex=_ttl(refresh_payload)))
    if not first_use:
        revoke_family(refresh_payload)
        raise Unauthorized("This refresh token was already used; its session has been revoked.",
                           code="token_revoked")
    user = current_user_or_401(refresh_payload)
    return issue_pair(user, family=refresh_payload.get("fam"))


def current_user_or_401(payload: dict[str, Any]) -> User:
    user = db.session.get(User, int(payload["sub"]))
    if user is None:
        raise Unauthorized("The account behind this token no longer exists.", code="invalid_token")
    return user


def decode_checked(token: str, expected_type: str = "access") -> dict[str, Any]:
    """Decode and fully check a raw token (signature, expiry, type, revocation) outside a request's header;
    used at Socket.IO connect."""
    payload = _decode(token, expected_type)
    if is_revoked(payload):
        raise Unauthorized("Token has been revoked.", code="token_revoked")
    return payload


def _decode(token: Any, expected_type: str) -> dict[str, Any]:
    """Signature, expiry and type of a raw token, not its revocation."""
    if not isinstance(token, str):
        raise Unauthorized("Token is invalid.", code="invalid_token")
    try:
        payload = decode_token(token)
    except Exception as exc:  # jwt's errors are many classes; each means "not a usable token"
        message = "Token has expired." if type(exc).__name__ == "ExpiredSignatureError" else "Token is invalid."
        raise Unauthorized(message, code="token_expired" if "expired" in message else "invalid_token") from exc
    if payload.get("type") != expected_type:
        raise Unauthorized(f"An {expected_type} token is required here.", code="wrong_token_type")
    return payload


def logout(access: dict[str, Any], refresh_token: Any = None) -> None:
    """End a session: the access token in use is revoked first, whatever else is wrong with the request. A refresh
    token of the same account then revokes its whole family; one that was already spent is treated as refresh treats
    its re-use (stolen: family revoked, reason `refresh_token_reused`). A refresh token that is not usable (forged,
    expired, another account's) is refused with 401 after the access token is revoked."""
    revoke(access)
    if refresh_token is None:
        return
    refresh = _decode(refresh_token, "refresh")
    if refresh["sub"] != access["sub"]:
        raise Unauthorized("The refresh token belongs to another account; the access token was revoked.",
                           code="invalid_token")
    spent = is_revoked(refresh)
    revoke_family(refresh, reason="refresh_token_reused" if spent else "logout")


def init_app(app: Flask) -> None:
    """Token lifetimes from the configuration and the contract's error body for every token failure."""
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(minutes=app.config["ACCESS_TOKEN_MINUTES"])
    app.config["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(days=app.config["REFRESH_TOKEN_DAYS"])
    # The token checks and error bodies, registered with the app's JWT manager when the app is built, not at import.
    jwt.token_in_blocklist_loader(_in_blocklist)
    jwt.revoked_token_loader(_revoked)
    jwt.expired_token_loader(_expired)
    jwt.invalid_token_loader(_invalid)
    jwt.unauthorized_loader(_missing)
    jwt.needs_fresh_token_loader(_needs_fresh)
    jwt.user_lookup_error_loader(_user_lookup)


def _in_blocklist(_header, payload) -> bool:
    return _check_and_prefetch(payload)


def _revoked(_header, payload):
    if payload.get("type") == "refresh":
        revoke_family(payload)  # re-use of a spent refresh token: treat the family as stolen
    return error_response(401, "token_revoked", "Token has been revoked.")


def _expired(_header, _payload):
    return error_response(401, "token_expired", "Token has expired.")


def _invalid(reason: str):
    return error_response(401, "invalid_token", f"Token is invalid: {reason}.")


def _missing(reason: str):
    return error_response(401, "unauthorized", f"Authentication required: {reason}.")


def _needs_fresh(_header, _payload):
    return error_response(401, "fresh_token_required", "A fresh login is required.")


def _user_lookup(_header, _payload):
    return error_response(401, "invalid_token", "The account behind this token no longer exists.")
