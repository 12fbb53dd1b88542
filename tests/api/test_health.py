"""Root, liveness, readiness, docs and the error shape for routing errors."""


def test_root_points_to_docs(client):
    assert client.get("/").json == {"message": "Go to /docs for API documentation"}


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok"


def test_readyz_when_everything_is_up(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_names_redis_when_it_is_down(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": "ok", "redis": "down"}
    assert response.json["error"]["code"] == "dependency_down"
    assert "redis" in response.json["error"]["message"]


def test_readyz_names_the_database_when_it_is_down(make_app):
    app = make_app(SQLALCHEMY_DATABASE_URI="postgresql://postgres@127.0.0.1:1/none")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == "down"
    assert response.json["error"]["details"] == {"down": ["database"]}


def test_openapi_and_docs_are_served_offline(client):
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    assert "/api/v1/auth/login" in spec.json["paths"]
    page = client.get("/docs")
    assert page.status_code == 200
    assert b"/docs/assets/swagger-ui-bundle.js" in page.data
    asset = client.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert len(asset.data) > 100_000


def test_unknown_route_is_json_404(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_wrong_method_is_json_405(client):
    response = client.delete("/healthz")
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def test_security_headers_on_every_response(client):
    for path in ("/", "/nope", "/api/v1/auth/me"):
        headers = client.get(path).headers
        assert headers["Content-Security-Policy"] == "default-src 'self'"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in headers


def test_docs_page_gets_its_own_wider_policy(client):
    csp = client.get("/docs").headers["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-inline'" in csp


def test_hsts_behind_a_trusted_tls_proxy(make_app):
    app = make_app(TRUSTED_PROXIES=1)
    response = app.test_client().get("/", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_hsts_when_configured_as_behind_tls(make_app):
    app = make_app(BEHIND_TLS_PROXY=True)
    assert app.test_client().get("/").headers["Strict-Transport-Security"] == "max-age=31536000"


def test_cors_allows_configured_origin_only(make_app):
    app = make_app(CORS_ORIGINS=["https://editor.example"])
    client = app.test_client()
    allowed = client.get("/healthz", headers={"Origin": "https://editor.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://editor.example"
    denied = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in denied.headers


def test_unexpected_errors_are_json_500_without_trace(app):
    @app.route("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.json == {"error": {"code": "internal_error",
                                       "message": "An unexpected error occurred; it has been logged."}}
