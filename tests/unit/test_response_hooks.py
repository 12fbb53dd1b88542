"""The per-response hooks kept cheap: a header the view set itself wins over the security defaults, and hooks and
views are inspected for `async` once, not on every request."""

from __future__ import annotations

import functools

import pytest
from flask import Response


def test_a_views_own_security_header_is_kept(app):
    @app.get("/framed")
    def framed():
        return Response("ok", headers={"x-frame-options": "SAMEORIGIN", "Content-Security-Policy": "default-src *"})

    headers = app.test_client().get("/framed").headers
    assert headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert headers.getlist("Content-Security-Policy") == ["default-src *"]
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"


def test_plain_callables_are_remembered_and_others_still_checked(app, monkeypatch):
    def view():
        return "ok"

    class Unhashable:
        __hash__ = None

        def __call__(self):
            return "ok"

    assert app.ensure_sync(view) is view and view in app._plain_callables
    checks = []
    monkeypatch.setattr("flask.app.iscoroutinefunction", lambda func: checks.append(func) or False)
    assert app.ensure_sync(view) is view and checks == []  # remembered: not inspected again
    unhashable = Unhashable()
    assert app.ensure_sync(unhashable) is unhashable and checks == [unhashable]
    bound = functools.partial(view)
    assert app.ensure_sync(bound) is bound and app.ensure_sync(bound) is bound and checks == [unhashable, bound]


def test_the_cookie_session_is_read_only_when_a_cookie_is_sent(app):
    from flask import session

    @app.get("/visits")
    def visits():
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    browser = app.test_client()
    assert [browser.get("/visits").text for _ in range(2)] == ["1", "2"]  # the session cookie round-trips
    assert app.test_client().get("/visits").text == "1"  # no Cookie header: a fresh session


@pytest.mark.parametrize("origins", [["*"], ["https://a.example", "https://b.example"]])
def test_cors_headers_from_the_memo_are_flask_cors_own(tmp_path, monkeypatch, origins):
    from workspace import create_app, extensions

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'cors.db'}", "REDIS_URL": None,
                      "SOCKETIO_MESSAGE_QUEUE": None, "CORS_ORIGINS": origins})
    client = app.test_client()
    requests = [("GET", "/healthz", {}), ("GET", "/nope", {}), ("POST", "/api/v1/projects/", {}),
                ("GET", "/healthz", {"Origin": "https://a.example"}),
                ("OPTIONS", "/api/v1/auth/login", {"Origin": "https://a.example",
                                                   "Access-Control-Request-Method": "POST"})]

    def headers():
        seen = []
        for method, path, sent in requests:
            response = client.open(path, method=method, headers=sent)
            seen.append(sorted((k, v) for k, v in response.headers.items() if k != "X-Request-ID"))
        return seen

    memo = headers()
    assert any(name == "Access-Control-Allow-Origin" for name, _ in memo[0])
    monkeypatch.setattr(extensions, "_cors_from_memo_applies", lambda response: False)
    assert headers() == memo
