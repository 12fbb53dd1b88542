"""Extension objects, created once here and bound to the app in `create_app`."""

import time
from datetime import timedelta
from functools import partial
from urllib.parse import unquote

from flask import current_app, request
from flask.globals import request_ctx
from flask_cors import CORS
from flask_cors.core import (
    ACL_ORIGIN,
    FLASK_CORS_EVALUATED,
    get_cors_headers,
    get_cors_options,
    parse_resources,
    try_match_pattern,
)
from flask_cors.extension import merge_options
from flask_jwt_extended import JWTManager, view_decorators
from flask_jwt_extended.config import config as jwt_config
from flask_jwt_extended.default_callbacks import default_decode_key_callback
from flask_jwt_extended.tokens import _decode_jwt
from flask_jwt_extended.utils import get_unverified_jwt_headers
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_smorest import Api
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from jwt import ExpiredSignatureError
from sqlalchemy.orm import DeclarativeBase
from werkzeug.datastructures import Headers

from . import json_input  # noqa: F401 - installs the JSON-limits argument parser before any view is decorated
from .redis_store import RedisStore
from .schemas import ErrorSchema


class Base(DeclarativeBase):
    pass


def client_ip() -> str:
    """The caller's address; ProxyFix (TRUSTED_PROXIES) has already rewritten it when behind proxies."""
    return request.remote_addr or "unknown"


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


# Verified tokens remembered per app; cleared whole when full (a client reuses its access token for its lifetime).
VERIFIED_TOKENS_MAX = 10_000


class VerifiedTokens:
    """Token strings that verified, each with the key it verified against, its claims and (once the request guard
    asked for it) its header, which is read from the string alone (unverified) and so never changes."""

    def __init__(self) -> None:
        self.entries: dict[str, list] = {}  # token -> [key, claims, header or None]

    def __len__(self) -> int:
        return len(self.entries)

    def claims(self, key: object, token: str) -> dict | None:
        entry = self.entries.get(token)
        return entry[1] if entry is not None and entry[0] == key else None

    def remember(self, key: object, token: str, claims: dict) -> None:
        if len(self.entries) >= VERIFIED_TOKENS_MAX:
            self.entries.clear()
        self.entries[token] = [key, dict(claims), None]

    def forget(self, token: str) -> None:
        self.entries.pop(token, None)


class WorkspaceJWTManager(JWTManager):
    """flask-jwt-extended's manager, verifying a token string once instead of three parses per request.

    The library parses every token twice unverified (claims, then header) to hand both to a decode-key callback,
    then a third time verified, and on every request a fourth time for the header it stores (`get_jwt_header`).
    With the default callback (one configured key) the claims cannot change the key, so one verified parse does;
    and a token string that verified once, against the same key, verifies again until it expires, so its claims and
    header are remembered (bounded, per app) and only the expiry is checked on the next request. Revocation is not
    part of this: it is checked on every request. An expired token, CSRF values (cookie tokens) and a custom key
    loader take the library's path unchanged.
    """

    def _decode_jwt_from_config(self, encoded_token: str, csrf_value=None, allow_expired: bool = False) -> dict:
        if self._decode_key_callback is not default_decode_key_callback or csrf_value or allow_expired:
            return super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        verified = _verified_tokens()
        key = jwt_config.decode_key
        claims = verified.claims(key, encoded_token)
        if claims is not None and not _expired(claims):
            return dict(claims)
        try:
            claims = _decode_jwt(
                algorithms=jwt_config.decode_algorithms, allow_expired=False,
                audience=jwt_config.decode_audience, csrf_value=None, encoded_token=encoded_token,
                identity_claim_key=jwt_config.identity_claim_key, issuer=jwt_config.decode_issuer,
                leeway=jwt_config.leeway, secret=key,
                verify_aud=jwt_config.decode_audience is not None, verify_sub=jwt_config.verify_sub)
        except ExpiredSignatureError:
            verified.forget(encoded_token)
            # The library attaches the expired token's header and claims to the error for the expired loader.
            return super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        verified.remember(key, encoded_token, claims)
        return claims


def _verified_tokens() -> VerifiedTokens:
    verified = current_app.extensions.get("workspace_verified_tokens")
    if verified is None:
        verified = current_app.extensions["workspace_verified_tokens"] = VerifiedTokens()
    return verified


def _jwt_header(encoded_token: str) -> dict:
    """`get_jwt_header()`'s value for a request's token, parsed once per remembered token. The library's guard calls
    this right after the token decoded, so a remembered entry is one that verified; any other string is parsed."""
    verified = current_app.extensions.get("workspace_verified_tokens")
    entry = verified.entries.get(encoded_token) if verified is not None else None
    if entry is None:
        return get_unverified_jwt_headers(encoded_token)
    if entry[2] is None:
        entry[2] = get_unverified_jwt_headers(encoded_token)
    return dict(entry[2])


# The library's request guard reads the header through this module-level name (no hook of its own).
view_decorators.get_unverified_jwt_headers = _jwt_header


def _expired(claims: dict) -> bool:
    """PyJWT's expiry rule (`exp <= now - leeway`) for claims that passed its checks before."""
    if "exp" not in claims:
        return False
    leeway = jwt_config.leeway
    leeway = leeway.total_seconds() if isinstance(leeway, timedelta) else leeway
    return int(claims["exp"]) <= time.time() - leeway


jwt = WorkspaceJWTManager()


def _limiter_used() -> bool:
    """Whether flask-limiter made its state for this request (it does when it checks a limit)."""
    return hasattr(request_ctx._get_current_object(), "_limiter_request_context")


class WorkspaceLimiter(Limiter):
    """flask-limiter keeps the first app's key prefix and storage state on the instance; re-read them for each app
    (production builds one app per process, the tests build many)."""

    def init_app(self, app) -> None:
        self._key_prefix = ""
        self._storage_dead = False
        self._fallback_limiter = None
        super().init_app(app)
        # flask-limiter's after-request and teardown hooks create its per-request state on every request just to
        # find it empty; on requests no limit touched (nearly all: limits are per route) they are skipped.
        inject, release = Limiter._Limiter__inject_headers, self._Limiter__release_context
        after, teardown = app.after_request_funcs[None], app.teardown_request_funcs[None]
        after[:] = [self._inject_headers if isinstance(f, partial) and f.func is inject and f.args == (self,) else f
                    for f in after]
        teardown[:] = [self._release_context if f == release else f for f in teardown]

    def _inject_headers(self, response):
        if _limiter_used():
            return Limiter._Limiter__inject_headers(self, response)
        return response

    def _release_context(self, exc: BaseException | None = None) -> None:
        if _limiter_used():
            self._Limiter__release_context(exc)

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        # Every limit here is a route decorator, and a decorated view checks its own limits when it runs
        # (`in_middleware=False`). The before_request pass only applies default, application and blueprint
        # limits; with none configured it would only cost every request (a fifth of `/healthz`'s time).
        manager = self.limit_manager
        if in_middleware and not (manager.default_limits or manager.application_limits or manager._blueprint_limits):
            return
        super()._check_request_limit(callable_name=callable_name, in_middleware=in_middleware)


limiter = WorkspaceLimiter(key_func=client_ip)
socketio = SocketIO()


def _cors_from_memo_applies(response) -> bool:
    """A request without an Origin header (API clients, probes), not a preflight, whose response flask-cors has not
    seen: what flask-cors adds then depends only on the matched resource's options."""
    environ = request.environ
    return ("HTTP_ORIGIN" not in environ and request.method != "OPTIONS"
            and "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK" not in environ
            and isinstance(response.headers, Headers) and not hasattr(response, FLASK_CORS_EVALUATED)
            and not response.headers.get(ACL_ORIGIN))


class WorkspaceCORS(CORS):
    """flask-cors, adding the same headers from a memo on requests without an Origin header: it recomputes them (and
    formats a debug line) on every response, 6% of a /healthz's time. Everything else takes its own hook."""

    def init_app(self, app, **kwargs) -> None:
        super().init_app(app, **kwargs)
        merged = merge_options(app, self._options, kwargs)
        resources = [(pattern, get_cors_options(app, self._options, kwargs, opts))
                     for pattern, opts in parse_resources(merged.get("resources", r"/*"))]
        hooks = app.after_request_funcs[None]
        original = hooks[-1]  # the hook flask-cors just registered
        memo: dict[int, list[tuple[str, object]]] = {}

        def cors_from_memo(response):
            if not _cors_from_memo_applies(response):
                return original(response)
            path = unquote(request.path)
            for index, (pattern, options) in enumerate(resources):
                if try_match_pattern(path, pattern, caseSensitive=True):
                    if index not in memo:
                        memo[index] = list(get_cors_headers(options, Headers(), request.method).items(multi=True))
                    for name, value in memo[index]:
                        response.headers.add(name, value)
                    break
            return response

        hooks[-1] = cors_from_memo


cors = WorkspaceCORS()


class WorkspaceApi(Api):
    """flask-smorest's Api, documenting the contract's error body for every error response."""

    ERROR_SCHEMA = ErrorSchema


api = WorkspaceApi()
redis_store = RedisStore()
