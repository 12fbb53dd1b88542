"""JSON logs (one object per line, with request context), X-Request-ID, and no secret in any log line."""

from __future__ import annotations

import json
import logging

from flask import request

from workspace.observability import logging as json_logging

NOISY_BUT_SAFE = ("sqlalchemy.engine", "urllib3", "flask_jwt_extended", "werkzeug", "workspace", "rq", "flask_limiter")
PACKET_LOGGERS = ("socketio.server", "engineio.server", "socketio.client", "engineio.client")


def json_lines(text: str) -> list[dict]:
    """Every line of our handler's output parsed as JSON (a line that is not JSON fails the test)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def access_lines(text: str) -> list[dict]:
    return [line for line in json_lines(text) if line["logger"] == "workspace.access"]


def test_each_request_logs_one_json_line_with_its_context(client, make_user, capsys):
    user = make_user()
    capsys.readouterr()
    response = client.get("/api/v1/auth/me?debug=secret-query", headers={**user.headers, "X-Request-ID": "req-42"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "req-42"
    [line] = access_lines(capsys.readouterr().err)
    assert line["level"] == "INFO"
    assert line["time"].endswith("+00:00")
    assert line["request_id"] == "req-42"
    assert line["user_id"] == user.id
    assert line["route"] == "/api/v1/auth/me"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert "secret-query" not in json.dumps(line)  # the query string is never logged


def test_request_ids_are_generated_when_missing_or_insane(client):
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32
    assert client.get("/healthz").headers["X-Request-ID"] != generated
    for bad in ("has spaces", "x" * 129, "quote\"d", "<script>"):
        echoed = client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert echoed != bad and len(echoed) == 32
    # Errors and refusals carry it too.
    assert client.get("/nowhere", headers={"X-Request-ID": "abc.DEF-1"}).headers["X-Request-ID"] == "abc.DEF-1"


def test_records_logged_while_serving_carry_the_request_id(make_app, make_user, capsys):
    """A warning logged deep in a service (a replayed refresh token revokes its family) names the request."""
    client = make_app(RATELIMIT_ENABLED=False).test_client()
    user = make_user()
    headers = {"Authorization": f"Bearer {user.refresh}", "X-Request-ID": "replay-1"}
    assert client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {user.refresh}"}).status_code == 200
    capsys.readouterr()
    assert client.post("/api/v1/auth/refresh", headers=headers).status_code == 401
    lines = json_lines(capsys.readouterr().err)
    [warning] = [line for line in lines if line["message"] == "token family revoked"]
    assert warning["level"] == "WARNING"
    assert warning["request_id"] == "replay-1"
    assert warning["logger"] == "workspace.auth.tokens"
    assert str(warning["user_id"]) == str(user.id)


def test_anything_shaped_like_a_jwt_is_redacted(app, make_user, capsys):
    user = make_user()
    logging.getLogger("workspace.test").warning("leaked %s in a message", user.access)
    out = capsys.readouterr().err
    assert user.access not in out
    assert "[redacted-token]" in out


def test_configuring_twice_installs_one_handler(app):
    root = logging.getLogger()
    json_logging.configure_root("INFO")
    json_logging.configure_root("INFO")
    assert sum(1 for h in root.handlers if getattr(h, "workspace_json", False)) == 1


def debug_everything(caplog) -> None:
    """Every logger at DEBUG, including the libraries that log SQL and HTTP (after create_app set its levels)."""
    caplog.set_level(logging.DEBUG)
    for name in NOISY_BUT_SAFE:
        caplog.set_level(logging.DEBUG, logger=name)


def test_no_password_token_or_secret_in_any_log_line(make_app, caplog, capsys):
    """A realistic session (signup, login, bad logins, refresh, replayed refresh, logout, a socket with a token and one
    with a forged token), every logger at DEBUG: neither the raw records nor the printed lines contain a secret."""
    http_app = make_app(RATELIMIT_ENABLED=False, LOG_LEVEL="DEBUG")
    socket_app = make_app(RATELIMIT_ENABLED=False, LOG_LEVEL="DEBUG", SOCKETIO_MESSAGE_QUEUE=None)
    debug_everything(caplog)
    client = http_app.test_client()
    password, wrong = "Sup3r-secret-passphrase!", "an-incorrect-passphrase"
    secrets = [password, wrong, http_app.config["SECRET_KEY"], http_app.config["JWT_SECRET_KEY"]]

    signup = client.post("/api/v1/auth/signup", json={"email": "Logs@Example.com", "password": password, "name": "L"})
    assert signup.status_code == 201
    secrets += [signup.json["access_token"], signup.json["refresh_token"]]
    assert client.post("/api/v1/auth/login", json={"email": "logs@example.com", "password": wrong}).status_code == 401
    assert client.post("/api/v1/auth/login", json={"email": "nobody@example.com", "password": wrong}).status_code == 401
    login = client.post("/api/v1/auth/login", json={"email": "logs@example.com", "password": password})
    assert login.status_code == 200
    secrets += [login.json["access_token"], login.json["refresh_token"]]
    refreshed = client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {login.json['refresh_token']}"})
    assert refreshed.status_code == 200
    secrets += [refreshed.json["access_token"], refreshed.json["refresh_token"]]
    replay = client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {login.json['refresh_token']}"})
    assert replay.status_code == 401
    access = signup.json["access_token"]
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 200

    forged = access[:-6] + ("AAAAAA" if not access.endswith("AAAAAA") else "BBBBBB")
    secrets.append(forged)
    sockets = socket_app.extensions["socketio"]
    good = sockets.test_client(socket_app, auth={"token": access})
    assert good.is_connected()
    good.disconnect()
    bad = sockets.test_client(socket_app, auth={"token": forged})
    assert not bad.is_connected()

    logout = client.post("/api/v1/auth/logout", json={"refresh_token": signup.json["refresh_token"]},
                         headers={"Authorization": f"Bearer {access}"})
    assert logout.status_code == 204
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {access}"}).status_code == 401

    records = caplog.records
    printed = capsys.readouterr().err
    assert len(records) > 20 and printed.count("\n") > 20  # the capture really saw the session
    assert any(r.name.startswith("sqlalchemy.engine") for r in records)  # SQL was logged, at DEBUG, without params
    needles = secrets + [token.rsplit(".", 1)[-1] for token in secrets if token.count(".") == 2]
    for record in records:
        text = f"{record.getMessage()} {record.__dict__!r}"
        for needle in needles:
            assert needle not in text, f"{record.name} logged a secret: {record.getMessage()[:200]}"
    for needle in needles:
        assert needle not in printed


def test_packet_debug_logs_are_redacted_in_print(make_app, make_user, caplog, capsys):
    """Socket.IO's packet logs (opt-in, off by default) would carry the connect token: the printed line hides it."""
    app = make_app(SOCKETIO_MESSAGE_QUEUE=None)
    user = make_user()
    for name in PACKET_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    logging.getLogger().setLevel(logging.DEBUG)
    sio = app.extensions["socketio"].test_client(app, auth={"token": user.access})
    sio.disconnect()
    printed = capsys.readouterr().err
    assert user.access not in printed
    assert user.access.rsplit(".", 1)[-1] not in printed


def test_raw_wsgi_errors_writes_become_json_lines(make_app, capsys):
    """Servers and libraries write raw text to `wsgi.errors` (eventlet's websocket does at shutdown)."""
    app = make_app()

    @app.route("/_raw_errors")
    def raw_errors():
        stream = request.environ["wsgi.errors"]
        stream.write("socket shutdown error: [Errno 9]")
        stream.writelines(["second line\n", "   "])
        stream.flush()
        return "ok"

    capsys.readouterr()
    assert app.test_client().get("/_raw_errors", headers={"X-Request-ID": "raw-1"}).status_code == 200
    lines = [line for line in json_lines(capsys.readouterr().err) if line["logger"] == "wsgi.errors"]
    assert [line["message"] for line in lines] == ["socket shutdown error: [Errno 9]", "second line"]
    assert all(line["request_id"] == "raw-1" and line["level"] == "WARNING" for line in lines)
