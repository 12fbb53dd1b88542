"""In-process checks of the REST guards of issue 10 (the live attack replays are in tests/security): the metrics
bearer in production, the per-project quotas, the per-account login backoff clearing on success."""

from __future__ import annotations

import pytest

LOGIN = "/api/v1/auth/login"


def test_production_metrics_guard(make_app):
    guarded = make_app(APP_ENV="production", METRICS_TOKEN="scrape-token").test_client()
    assert guarded.get("/metrics").status_code == 401
    assert guarded.get("/metrics", headers={"Authorization": "Bearer scrape-tokeN"}).status_code == 401
    assert guarded.get("/metrics", headers={"Authorization": "Bearer scrape-token"}).status_code == 200
    closed = make_app(APP_ENV="production", METRICS_TOKEN=None).test_client()
    assert closed.get("/metrics", headers={"Authorization": "Bearer scrape-token"}).status_code == 404


@pytest.fixture
def quota_client(make_app, make_user):
    client = make_app(MAX_FILES_PER_PROJECT=2, MAX_PROJECT_BYTES=100).test_client()
    owner = make_user()
    project_id = client.post("/api/v1/projects/", json={"name": "Q"}, headers=owner.headers).json["id"]

    def put(path: str, content: str):
        return client.put(f"/api/v1/projects/{project_id}/files/{path}", json={"content": content},
                          headers=owner.headers)

    return put


def test_quota_on_file_count(quota_client):
    assert quota_client("a.txt", "a").status_code == 201
    assert quota_client("b.txt", "b").status_code == 201
    refused = quota_client("c.txt", "c")
    assert refused.status_code == 413 and refused.json["error"]["code"] == "file_quota_exceeded"
    assert quota_client("a.txt", "replaced").status_code == 200  # an existing path is not a new file


def test_quota_on_bytes_lets_a_project_shrink(make_app, quota_client):
    assert quota_client("a.txt", "x" * 60).status_code == 201
    refused = quota_client("b.txt", "y" * 41)
    assert refused.status_code == 413 and refused.json["error"]["code"] == "storage_quota_exceeded"
    assert refused.json["error"]["details"] == {"bytes": 101, "max_bytes": 100}
    assert quota_client("b.txt", "y" * 40).status_code == 201
    assert quota_client("a.txt", "x" * 10).status_code == 200


def test_a_correct_password_clears_the_accounts_failures(make_app, make_user):
    user = make_user()
    client = make_app(RATELIMIT_ENABLED=False, LOGIN_FAILURES_BEFORE_BACKOFF=3).test_client()
    for _ in range(2):
        assert client.post(LOGIN, json={"email": user.email, "password": "wrong"}).status_code == 401
    assert client.post(LOGIN, json={"email": user.email, "password": user.password}).status_code == 200
    for _ in range(2):  # counting starts over: two more failures are still below the threshold
        assert client.post(LOGIN, json={"email": user.email, "password": "wrong"}).status_code == 401
    assert client.post(LOGIN, json={"email": user.email, "password": user.password}).status_code == 200
    assert client.post(LOGIN, json={"email": user.email, "password": "wrong"}).status_code == 401
    for _ in range(2):
        client.post(LOGIN, json={"email": user.email, "password": "wrong"})
    throttled = client.post(LOGIN, json={"email": user.email, "password": user.password})
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
