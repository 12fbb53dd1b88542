"""Flask's cookie session, minus its cost on the requests that carry no session cookie (all API requests).

The API authenticates with bearer tokens and never stores anything in `flask.session`; Flask-SocketIO still reads
it in socket handlers, so the interface stays. Flask builds an itsdangerous serializer (an HMAC key derivation) on
every request just to find there is no cookie; this interface looks for the cookie first.
"""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface


class CookieSessionWhenPresent(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # No Cookie header at all (every API client): not even the parse of an empty cookie jar.
        if "HTTP_COOKIE" not in request.environ or self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    app.session_interface = CookieSessionWhenPresent()
