"""Rate limits on signup, login and refresh: per client IP, shared through Redis, failing open without it."""

import pytest

LOGIN = "/api/v1/auth/login"
BODY = {"email": "nobody@example.com", "password": "whatever"}


def test_sixth_login_in_a_minute_is_429_with_retry_after(client):
    statuses = [client.post(LOGIN, json=BODY).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    response = client.post(LOGIN, json=BODY)
    assert response.json["error"]["code"] == "rate_limited"
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_limit_is_configurable(make_app):
    client = make_app(AUTH_RATE_LIMIT="2 per minute").test_client()
    assert [client.post(LOGIN, json=BODY).status_code for _ in range(3)] == [401, 401, 429]


def test_limit_is_shared_by_two_instances(make_app):
    first, second = make_app().test_client(), make_app().test_client()
    for _ in range(3):
        first.post(LOGIN, json=BODY)
    statuses = [second.post(LOGIN, json=BODY).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_limit_is_per_client_ip(client):
    for _ in range(5):
        client.post(LOGIN, json=BODY, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert client.post(LOGIN, json=BODY, environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code == 429
    # Another address, another account (the same account is in its own backoff by now: see test_sec_rest_login).
    other = {**BODY, "email": "somebody-else@example.com"}
    assert client.post(LOGIN, json=other, environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 401


def test_forwarded_for_is_ignored_without_trusted_proxies(client):
    for n in range(5):
        client.post(LOGIN, json=BODY, headers={"X-Forwarded-For": f"203.0.113.{n}"})
    assert client.post(LOGIN, json=BODY, headers={"X-Forwarded-For": "203.0.113.99"}).status_code == 429


def test_forwarded_for_is_used_behind_a_trusted_proxy(make_app):
    client = make_app(TRUSTED_PROXIES=1).test_client()
    for _ in range(5):
        client.post(LOGIN, json=BODY, headers={"X-Forwarded-For": "203.0.113.1"})
    assert client.post(LOGIN, json=BODY, headers={"X-Forwarded-For": "203.0.113.1"}).status_code == 429
    other = {**BODY, "email": "somebody-else@example.com"}
    assert client.post(LOGIN, json=other, headers={"X-Forwarded-For": "203.0.113.2"}).status_code == 401


@pytest.mark.parametrize("path", ["/api/v1/auth/signup", "/api/v1/auth/refresh"])
def test_signup_and_refresh_are_limited_too(client, path):
    statuses = [client.post(path, json={}).status_code for _ in range(6)]
    assert statuses[-1] == 429
    assert 429 not in statuses[:5]


def test_redis_down_login_still_works_and_limiter_fails_open(make_app, make_user, caplog):
    user = make_user()
    client = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client()
    response = client.post(LOGIN, json={"email": user.email, "password": user.password})
    assert response.status_code == 200
    # Revocation cannot be checked: fail closed with a clear 503 rather than accept a possibly revoked token.
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {response.json['access_token']}"})
    assert me.status_code == 503
    assert me.json["error"]["code"] == "service_unavailable"


def test_limit_headers_on_limited_routes_only(client):
    """flask-limiter's header hook runs only on requests a limit was checked for; those still get the headers."""
    limited = client.post(LOGIN, json=BODY)
    assert limited.headers["X-RateLimit-Limit"] == "5" and limited.headers["X-RateLimit-Remaining"] == "4"
    assert "X-RateLimit-Limit" not in client.get("/healthz").headers
