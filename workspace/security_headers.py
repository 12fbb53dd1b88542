"""Security headers on every response, as the contract lists them."""

from __future__ import annotations

from flask import Flask, Response, current_app, request

DEFAULT_CSP = "default-src 'self'"
# Swagger UI and the web client run an inline bootstrap script and inline styles; only those routes get this.
RELAXED_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; connect-src 'self' ws: wss:")
RELAXED_PREFIXES = ("/docs", "/app")


def add_security_headers(response: Response) -> Response:
    relaxed = request.path.startswith(RELAXED_PREFIXES)
    response.headers.setdefault("Content-Security-Policy", RELAXED_CSP if relaxed else DEFAULT_CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    # is_secure is true behind a TLS proxy once ProxyFix trusts its X-Forwarded-Proto.
    if request.is_secure or current_app.config.get("BEHIND_TLS_PROXY"):
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)
