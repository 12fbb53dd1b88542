"""Accounts and tokens: signup, login, refresh rotation, logout, me, and every bad-token kind."""

import base64
import json
from datetime import timedelta

import pytest
from flask_jwt_extended import create_access_token

from services import bearer

SIGNUP = "/api/v1/auth/signup"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"


@pytest.fixture
def app(make_app):
    # Rate limits have their own tests; here they would only get in the way.
    return make_app(RATELIMIT_ENABLED=False)


def signup(client, email="ada@example.com", password="analytical engine", name="Ada"):
    return client.post(SIGNUP, json={"email": email, "password": password, "name": name})


def test_signup_returns_user_and_tokens(client):
    response = signup(client, email="  Ada@Example.COM ")
    assert response.status_code == 201
    body = response.json
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["name"] == "Ada"
    assert body["user"]["created_at"].endswith("+00:00")
    assert body["access_token"] and body["refresh_token"]
    me = client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert set(me.json) == {"id", "email", "name", "created_at"}


def test_signup_duplicate_email_is_409_whatever_the_case(client):
    assert signup(client).status_code == 201
    response = signup(client, email="ADA@example.com")
    assert response.status_code == 409
    assert response.json["error"]["code"] == "email_taken"


def test_signup_defaults_name_to_email_local_part(client):
    response = client.post(SIGNUP, json={"email": "grace@example.com", "password": "compiler1"})
    assert response.json["user"]["name"] == "grace"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"password": "long enough"}, "email"),
        ({"email": "not-an-email", "password": "long enough"}, "email"),
        ({"email": "a@example.com"}, "password"),
        ({"email": "a@example.com", "password": "short"}, "password"),
        ({"email": "a@example.com", "password": 12345678}, "password"),
        ({"email": ["a@example.com"], "password": "long enough"}, "email"),
        ({"email": "a@example.com", "password": "long enough", "name": "x" * 101}, "name"),
        ({"email": "a@example.com", "password": "long\x00enough"}, "password"),
    ],
)
def test_signup_validation_errors_name_the_field(client, body, field):
    response = client.post(SIGNUP, json=body)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["details"]["fields"]


@pytest.mark.parametrize("value", ["Robert'); DROP TABLE users;--", "名前 🚀 ñ", "<script>alert(1)</script>"])
def test_unicode_and_sql_like_strings_are_plain_data(client, value):
    response = signup(client, email="odd@example.com", password=value + "12345678", name=value)
    assert response.status_code == 201
    assert response.json["user"]["name"] == value
    login = client.post(LOGIN, json={"email": "odd@example.com", "password": value + "12345678"})
    assert login.status_code == 200


def test_garbage_json_is_400(client):
    response = client.post(SIGNUP, data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"


def test_non_json_body_is_415(client):
    response = client.post(SIGNUP, data="email=a", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json["error"]["code"] == "unsupported_media_type"


def test_json_array_body_is_422(client):
    response = client.post(SIGNUP, json=["a", "b"])
    assert response.status_code == 422


def test_ten_megabyte_body_is_413(client):
    response = client.post(SIGNUP, data=b'{"email": "' + b"a" * 10_000_000 + b'"}',
                           content_type="application/json")
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"


def test_login_returns_bearer_pair(client):
    signup(client)
    response = client.post(LOGIN, json={"email": "ADA@example.com ", "password": "analytical engine"})
    assert response.status_code == 200
    assert response.json["token_type"] == "bearer"
    assert response.json["expires_in"] == 15 * 60
    assert client.get(ME, headers=bearer(response.json["access_token"])).status_code == 200


def test_login_same_401_for_unknown_email_and_wrong_password(client):
    signup(client)
    wrong = client.post(LOGIN, json={"email": "ada@example.com", "password": "wrong password"})
    unknown = client.post(LOGIN, json={"email": "nobody@example.com", "password": "analytical engine"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json
    assert wrong.json["error"]["code"] == "invalid_credentials"


def test_refresh_rotates_and_revokes_the_used_token(client):
    tokens = signup(client).json
    first = client.post(REFRESH, headers=bearer(tokens["refresh_token"]))
    assert first.status_code == 200
    assert first.json["refresh_token"] != tokens["refresh_token"]
    assert client.get(ME, headers=bearer(first.json["access_token"])).status_code == 200
    second = client.post(REFRESH, headers=bearer(first.json["refresh_token"]))
    assert second.status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_the_family(client):
    tokens = signup(client).json
    rotated = client.post(REFRESH, headers=bearer(tokens["refresh_token"])).json
    replay = client.post(REFRESH, headers=bearer(tokens["refresh_token"]))
    assert replay.status_code == 401
    assert replay.json["error"]["code"] == "token_revoked"
    # The whole family is gone: the legitimately rotated pair too.
    assert client.post(REFRESH, headers=bearer(rotated["refresh_token"])).status_code == 401
    assert client.get(ME, headers=bearer(rotated["access_token"])).status_code == 401
    # Another login is another family and still works.
    fresh = client.post(LOGIN, json={"email": "ada@example.com", "password": "analytical engine"}).json
    assert client.get(ME, headers=bearer(fresh["access_token"])).status_code == 200


def test_concurrent_spend_of_one_refresh_token_lets_only_one_through(app, client):
    from flask_jwt_extended import decode_token

    from workspace.auth import tokens as token_service
    from workspace.errors import Unauthorized

    pair = signup(client).json
    with app.app_context():
        payload = decode_token(pair["refresh_token"])
        token_service.rotate(payload)  # the winner
        with pytest.raises(Unauthorized):
            token_service.rotate(payload)  # the racer that passed the blocklist check at the same time
    assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 401


def test_access_token_is_refused_for_refresh_and_the_reverse(client):
    tokens = signup(client).json
    as_refresh = client.post(REFRESH, headers=bearer(tokens["access_token"]))
    assert as_refresh.status_code == 401
    assert as_refresh.json["error"]["code"] == "invalid_token"
    as_access = client.get(ME, headers=bearer(tokens["refresh_token"]))
    assert as_access.status_code == 401


def test_logout_revokes_access_at_once_on_another_instance(make_app):
    first = make_app(RATELIMIT_ENABLED=False).test_client()
    second = make_app(RATELIMIT_ENABLED=False).test_client()
    tokens = signup(first).json
    assert second.get(ME, headers=bearer(tokens["access_token"])).status_code == 200
    response = first.post(LOGOUT, headers=bearer(tokens["access_token"]),
                          json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 204
    assert second.get(ME, headers=bearer(tokens["access_token"])).json["error"]["code"] == "token_revoked"
    assert second.post(REFRESH, headers=bearer(tokens["refresh_token"])).status_code == 401


def test_logout_without_body_keeps_the_refresh_token(client):
    tokens = signup(client).json
    assert client.post(LOGOUT, headers=bearer(tokens["access_token"])).status_code == 204
    assert client.get(ME, headers=bearer(tokens["access_token"])).status_code == 401
    assert client.post(REFRESH, headers=bearer(tokens["refresh_token"])).status_code == 200


def test_logout_refuses_someone_elses_refresh_token(client):
    mine = signup(client).json
    theirs = signup(client, email="bob@example.com").json
    response = client.post(LOGOUT, headers=bearer(mine["access_token"]),
                           json={"refresh_token": theirs["refresh_token"]})
    assert response.status_code == 401
    assert client.post(REFRESH, headers=bearer(theirs["refresh_token"])).status_code == 200


def test_logout_refuses_a_garbage_refresh_token(client):
    mine = signup(client).json
    response = client.post(LOGOUT, headers=bearer(mine["access_token"]), json={"refresh_token": "garbage"})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_token"
    assert client.get(ME, headers=bearer(mine["access_token"])).status_code == 401  # revoked all the same


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_bad_tokens_are_401_with_a_reason(app, client):
    user_tokens = signup(client).json
    with app.app_context():
        expired = create_access_token(identity="1", expires_delta=timedelta(seconds=-5))
    header, payload, _ = user_tokens["access_token"].split(".")
    cases = {
        "missing": ({}, "unauthorized"),
        "garbage": (bearer("garbage"), "invalid_token"),
        "expired": (bearer(expired), "token_expired"),
        "forged": (bearer(f"{header}.{payload}.{_b64({'x': 1})}"), "invalid_token"),
        "alg none": (bearer(f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}."), "invalid_token"),
        "wrong scheme": ({"Authorization": f"Token {user_tokens['access_token']}"}, "unauthorized"),
    }
    for name, (headers, code) in cases.items():
        response = client.get(ME, headers=headers)
        assert response.status_code == 401, name
        assert response.json["error"]["code"] == code, name


def test_token_signed_with_another_key_is_refused(make_app):
    other = make_app(JWT_SECRET_KEY="another-secret-key-of-enough-length")
    with other.app_context():
        foreign = create_access_token(identity="1")
    ours = make_app(RATELIMIT_ENABLED=False).test_client()
    assert ours.get(ME, headers=bearer(foreign)).status_code == 401


def test_token_of_a_deleted_user_is_refused(app, client, make_user):
    from workspace.extensions import db
    from workspace.models import User

    user = make_user()
    with app.app_context():
        db.session.delete(db.session.get(User, user.id))
        db.session.commit()
    response = client.get(ME, headers=user.headers)
    assert response.status_code == 401
    assert client.post(REFRESH, headers=bearer(user.refresh)).status_code == 401


def test_password_hashes_are_argon2id(app, client):
    from workspace.extensions import db
    from workspace.models import User

    signup(client)
    with app.app_context():
        user = db.session.query(User).one()
        assert user.password_hash.startswith("$argon2id$")
        assert "analytical" not in user.password_hash
