"""The app's JWT manager verifies a token string once: same claims, same errors, expiry still enforced on every use,
and the library's own path whenever a key loader could pick the key from the claims or an expired token's details
are wanted."""

from __future__ import annotations

from datetime import timedelta

import jwt as pyjwt
import pytest
from flask import Flask
from flask_jwt_extended import create_access_token, decode_token

from workspace import extensions
from workspace.extensions import WorkspaceJWTManager


@pytest.fixture
def manager_app():
    app = Flask(__name__)
    app.config["JWT_SECRET_KEY"] = "k" * 64
    manager = WorkspaceJWTManager(app)
    with app.app_context():
        yield app, manager


def test_one_verified_parse_gives_the_librarys_claims(manager_app, monkeypatch):
    app, _ = manager_app
    token = create_access_token(identity="7", additional_claims={"fam": "f", "name": "Ada"})
    loads = []
    original = pyjwt.api_jws.PyJWS._load
    monkeypatch.setattr(pyjwt.api_jws.PyJWS, "_load", lambda self, t: loads.append(t) or original(self, t))
    claims = decode_token(token)
    assert len(loads) == 1
    assert (claims["sub"], claims["fam"], claims["name"], claims["type"], claims["fresh"]) == ("7", "f", "Ada",
                                                                                              "access", False)


def test_a_token_signed_with_another_key_is_refused(manager_app):
    token = pyjwt.encode({"sub": "7", "type": "access"}, "x" * 64, algorithm="HS256")
    with pytest.raises(pyjwt.InvalidSignatureError):
        decode_token(token)


def test_an_expired_token_carries_its_claims_for_the_expired_loader(manager_app):
    token = create_access_token(identity="7", expires_delta=timedelta(seconds=-5))
    with pytest.raises(pyjwt.ExpiredSignatureError) as caught:
        decode_token(token)
    assert caught.value.jwt_data["sub"] == "7" and caught.value.jwt_header["alg"] == "HS256"


def test_a_custom_key_loader_still_chooses_the_key(manager_app):
    _, manager = manager_app
    manager.decode_key_loader(lambda header, claims: "per-tenant-" + claims["tenant"] + "-" + "z" * 48)
    token = pyjwt.encode({"sub": "7", "type": "access", "tenant": "acme"}, "per-tenant-acme-" + "z" * 48,
                         algorithm="HS256")
    assert decode_token(token)["tenant"] == "acme"


def _counting_loads(monkeypatch) -> list:
    loads = []
    original = pyjwt.api_jws.PyJWS._load
    monkeypatch.setattr(pyjwt.api_jws.PyJWS, "_load", lambda self, t: loads.append(t) or original(self, t))
    return loads


def test_a_verified_token_is_not_parsed_again(manager_app, monkeypatch):
    token = create_access_token(identity="7")
    first = decode_token(token)
    loads = _counting_loads(monkeypatch)
    first["sub"] = "tampered by a caller"
    again = decode_token(token)
    assert loads == [] and again["sub"] == "7" and again["jti"] == first["jti"]


def test_a_remembered_token_still_expires(manager_app, monkeypatch):
    token = create_access_token(identity="7", expires_delta=timedelta(seconds=30))
    expires = decode_token(token)["exp"]
    monkeypatch.setattr(extensions.time, "time", lambda: expires + 1)
    monkeypatch.setattr(pyjwt.api_jwt, "datetime", _Clock(expires + 1))
    with pytest.raises(pyjwt.ExpiredSignatureError) as caught:
        decode_token(token)
    assert caught.value.jwt_data["sub"] == "7"


def test_a_remembered_token_is_refused_once_the_key_changes(manager_app):
    app, _ = manager_app
    token = create_access_token(identity="7")
    decode_token(token)
    app.config["JWT_SECRET_KEY"] = "r" * 64
    with pytest.raises(pyjwt.InvalidSignatureError):
        decode_token(token)


def test_the_remembered_tokens_are_bounded(manager_app, monkeypatch):
    app, _ = manager_app
    monkeypatch.setattr(extensions, "VERIFIED_TOKENS_MAX", 2)
    for n in range(5):
        decode_token(create_access_token(identity=str(n)))
    assert 1 <= len(app.extensions["workspace_verified_tokens"]) <= 2


class _Clock:
    """Stands in for `datetime.datetime` in PyJWT so that its `now(tz)` is a chosen Unix time."""

    def __init__(self, timestamp: float) -> None:
        self.timestamp = timestamp

    def now(self, tz=None):
        import datetime as real

        return real.datetime.fromtimestamp(self.timestamp, tz=tz)


@pytest.fixture
def guarded_app(manager_app):
    from flask_jwt_extended import get_jwt, get_jwt_header, jwt_required

    app, _ = manager_app

    @app.get("/who")
    @jwt_required()
    def who():
        return {"sub": get_jwt()["sub"], "alg": get_jwt_header()["alg"]}

    @app.post("/spend")
    @jwt_required(refresh=True)
    def spend():
        return {"type": get_jwt()["type"]}

    return app


def test_a_remembered_tokens_header_is_not_parsed_again(guarded_app, monkeypatch):
    client = guarded_app.test_client()
    token = create_access_token(identity="7", additional_headers={"kid": "k1"})
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/who", headers=auth).json == {"sub": "7", "alg": "HS256"}
    loads = _counting_loads(monkeypatch)
    with guarded_app.test_request_context(headers=auth):
        from flask_jwt_extended import get_jwt_header, verify_jwt_in_request

        verify_jwt_in_request()
        header = get_jwt_header()
        assert header == pyjwt.get_unverified_header(token) and header["kid"] == "k1"
        header["kid"] = "tampered by a caller"
    assert loads == [token]  # the comparison's own parse above, none by the guard
    with guarded_app.test_request_context(headers=auth):
        verify_jwt_in_request()
        assert get_jwt_header()["kid"] == "k1"


def test_an_unknown_tokens_header_is_the_librarys_parse(manager_app):
    from flask_jwt_extended import view_decorators

    token = pyjwt.encode({"sub": "7"}, "x" * 64, algorithm="HS256", headers={"kid": "other"})
    assert view_decorators.get_unverified_jwt_headers(token) == pyjwt.get_unverified_header(token)
    with pytest.raises(pyjwt.DecodeError):
        view_decorators.get_unverified_jwt_headers("not.a.token")


def test_the_guard_answers_as_the_library_does(guarded_app):
    from flask_jwt_extended import create_refresh_token

    client = guarded_app.test_client()
    access, refresh = create_access_token(identity="7"), create_refresh_token(identity="7")
    for _ in range(2):  # the second time from the remembered claims
        assert client.get("/who", headers={"Authorization": f"Bearer {access}"}).json == {"sub": "7", "alg": "HS256"}
    assert client.post("/spend", headers={"Authorization": f"Bearer {refresh}"}).json == {"type": "refresh"}
    assert client.get("/who").json == {"msg": "Missing Authorization Header"}
    assert client.get("/who", headers={"Authorization": "Bearer"}).status_code == 422  # bad header
    assert client.get("/who", headers={"Authorization": f"Bearer {refresh}"}).status_code == 422  # wrong type
    assert client.post("/spend", headers={"Authorization": f"Bearer {access}"}).status_code == 422
    assert client.options("/who").status_code == 200  # exempt, as in the library
