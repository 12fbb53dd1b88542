"""`token_required()`: flask-jwt-extended's `jwt_required()` for tokens in the Authorization header (this app's only
place for them), with the same checks in the same order, the same errors (the library's exceptions, so its error
loaders answer) and the same request state (`get_jwt()`, `get_jwt_header()`, ...).

What differs is the cost: the library parses each token's header once more on every request after verifying it,
and rebuilds its list of token locations; here a verified token's header is remembered with it (bounded, per app,
like the claims in `extensions.WorkspaceJWTManager`). Any other configuration takes the library's own path.
"""

from __future__ import annotations

from functools import wraps

from flask import current_app, g, request
from flask_jwt_extended import decode_token, verify_jwt_in_request
from flask_jwt_extended.config import config
from flask_jwt_extended.internal_utils import (
    custom_verification_for_token,
    verify_token_not_blocklisted,
    verify_token_type,
)
from flask_jwt_extended.utils import get_unverified_jwt_headers
from flask_jwt_extended.view_decorators import _decode_jwt_from_headers, _load_user

HEADERS_MAX = 10_000


def token_required(refresh: bool = False):
    """Guard a view: a valid, unrevoked access token (a refresh token with `refresh=True`) in the Authorization
    header."""

    def wrapper(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            if request.method not in config.exempt_methods:
                _verify(refresh)
            return current_app.ensure_sync(view)(*args, **kwargs)

        return guarded

    return wrapper


def _verify(refresh: bool) -> None:
    if list(config.token_location) != ["headers"]:
        verify_jwt_in_request(refresh=refresh)
        return
    encoded_token, _ = _decode_jwt_from_headers()
    claims = decode_token(encoded_token)  # signature (over the header too), expiry, required claims
    header = _verified_header(encoded_token)
    verify_token_type(claims, refresh)
    verify_token_not_blocklisted(header, claims)
    custom_verification_for_token(header, claims)
    g._jwt_extended_jwt_user = _load_user(header, claims)
    g._jwt_extended_jwt_header = header
    g._jwt_extended_jwt = claims
    g._jwt_extended_jwt_location = "headers"


def _verified_header(encoded_token: str) -> dict:
    """The header of a token whose signature was just verified, parsed once per token string."""
    headers = current_app.extensions.setdefault("workspace_token_headers", {})
    header = headers.get(encoded_token)
    if header is None:
        header = get_unverified_jwt_headers(encoded_token)
        if len(headers) >= HEADERS_MAX:
            headers.clear()
        headers[encoded_token] = header
    return dict(header)
