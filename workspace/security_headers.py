"""Security headers on every response, as the contract lists them."""

from __future__ import annotations

from flask import Flask, Response, current_app, request

DEFAULT_CSP = "default-src 'self'"
# Swagger UI runs an inline bootstrap script and inline styles; only its route gets this.
RELAXED_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:")
# The web client: its own scripts and styles only (no inline script), talks to its own origin only ('self' covers
# ws:/wss: of the same host in current browsers, so the Socket.IO websocket still connects), the data: favicon.
APP_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _policy(path: str) -> str:
    if path.startswith("/app"):
        return APP_CSP
    return RELAXED_CSP if path.startswith("/docs") else DEFAULT_CSP


_FIXED = (("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"))


def add_security_headers(response: Response) -> Response:
    """Each header unless the view set its own (one pass over the response's headers, not one per header)."""
    headers = response.headers
    present = {name.lower() for name, _ in headers}
    if "content-security-policy" not in present:
        headers.add("Content-Security-Policy", _policy(request.path))
    for name, value in _FIXED:
        if name.lower() not in present:
            headers.add(name, value)
    # is_secure is true behind a TLS proxy once ProxyFix trusts its X-Forwarded-Proto.
    if (request.is_secure or current_app.config.get("BEHIND_TLS_PROXY")) and "strict-transport-security" not in present:
        headers.add("Strict-Transport-Security", "max-age=31536000")
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)
