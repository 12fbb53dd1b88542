"""workspace: a real-time collaborative workspace backend. `create_app()` builds the Flask application."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Config, load_config

from . import (
    cli,
    db_pool,
    docs,
    fair_share,
    health,
    models,  # noqa: F401 - registers the tables with the metadata
    observability,
    realtime,
    security_headers,
    sessions,
    web,
)
from .auth import bp as auth_bp
from .auth import tokens
from .errors import ApiError, register_error_handlers
from .extensions import api, cors, db, jwt, limiter, migrate, redis_store, socketio
from .files import bp as files_bp
from .jobs.routes import bp as jobs_bp
from .observability.metrics import bp as metrics_bp
from .projects import bp as projects_bp
from .projects import cache as project_list_cache
from .projects import collaborators_bp
from .realtime.status import bp as realtime_status_bp
from .redis_store import blocking_pool


class WorkspaceFlask(Flask):
    """Flask, remembering which hooks and views are plain functions: it calls `ensure_sync` on every hook and view of
    every request (about a dozen a request here), and each call inspects the function's code flags anew."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain_callables: set[Any] = set()

    def ensure_sync(self, func):
        try:
            if func in self._plain_callables:
                return func
        except TypeError:  # an unhashable callable: nothing to remember it by
            return super().ensure_sync(func)
        synced = super().ensure_sync(func)
        if synced is func:
            self._plain_callables.add(func)
        return synced


BEARER = {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}


def create_app(config: Config | Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment's configuration; a mapping overrides single keys (tests)."""
    app = WorkspaceFlask(__name__, instance_relative_config=True)
    app.config.from_object(config if isinstance(config, Config) else load_config())
    if isinstance(config, Mapping):
        app.config.update(config)
    _derive_settings(app)
    observability.init_app(app)  # request ids, JSON logs, metrics: before anything logs or serves

    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    db.init_app(app)
    db_pool.init_app(app)
    migrate.init_app(app, db, render_as_batch=True, compare_type=True)
    redis_store.init_app(app)
    tokens.init_app(app)
    jwt.init_app(app)
    limiter.init_app(app)
    cors.init_app(app, origins=app.config["CORS_ORIGINS"], expose_headers=["X-Cache", "X-Request-ID", "Retry-After"])
    api.init_app(app, spec_kwargs={"components": {"securitySchemes": BEARER}, "security": [{"bearerAuth": []}]})
    _register_blueprints(app)
    cli.init_app(app)  # operator commands: flask --app workspace:create_app users|projects|jobs ...
    register_error_handlers(app)
    security_headers.init_app(app)
    sessions.init_app(app)
    app.before_request(_require_json_body)
    project_list_cache.init_app(app)  # before realtime: caches are fresh when clients are told of a change
    plain_http = app.wsgi_app
    realtime.init_app(app)  # Flask-SocketIO, its message queue and the socket event handlers
    app.wsgi_app = fair_share.SplitByPath("/socket.io", app.wsgi_app, plain_http)  # the contract's path
    observability.wrap_wsgi(app)  # raw `wsgi.errors` writes become JSON log lines
    app.wsgi_app = fair_share.YieldBetweenRequests(app.wsgi_app, socketio.sleep)  # outermost: see fair_share
    fair_share.flatten(app.wsgi_app)  # every idle websocket stays parked under these layers (see fair_share)
    return app


def _derive_settings(app: Flask) -> None:
    """Settings computed from others: the embedded database file and the limiter's storage."""
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "workspace.db")
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True, "hide_parameters": True}
    redis_url = app.config.get("REDIS_URL")
    app.config["RATELIMIT_STORAGE_URI"] = redis_url or "memory://"
    app.config["RATELIMIT_KEY_PREFIX"] = app.config["REDIS_KEY_PREFIX"] + "limits"
    # Redis down: count in memory per process (logged by flask-limiter) rather than refuse every login.
    app.config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    if redis_url:
        # limits builds its client on this pool: waits for a free connection instead of "Too many connections".
        app.config["RATELIMIT_STORAGE_OPTIONS"] = {"connection_pool": blocking_pool(app, redis_url)}


def _register_blueprints(app: Flask) -> None:
    app.register_blueprint(docs.bp)
    app.register_blueprint(web.bp)  # the web client at /app
    for bp in (health.bp, auth_bp, metrics_bp, jobs_bp):
        api.register_blueprint(bp)
    for bp in (projects_bp, collaborators_bp, files_bp):
        api.register_blueprint(bp)
    api.register_blueprint(realtime_status_bp)


def _require_json_body() -> None:
    """A body sent to the API must be JSON: anything else is a clear 415, not a confusing 422."""
    if (request.method in ("POST", "PUT", "PATCH") and request.path.startswith("/api/")
            and (request.content_length or 0) > 0 and not request.is_json):
        raise ApiError("Send the body as application/json.", code="unsupported_media_type", status=415)
