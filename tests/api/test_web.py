"""The web client's blueprint: /app serves the page with its headers, every asset it names loads, and the
vendored socket.io-client is the version package.json pins (so the page and the live tests use the same client)."""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path

import pytest

from workspace.security_headers import APP_CSP
from workspace.web import SOCKETIO_CLIENT_VERSION, STATIC

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def web(make_app):
    """The page needs no database or Redis, but the app factory binds them; an in-process app is enough."""
    return make_app().test_client()


@pytest.mark.parametrize("path", ["/app", "/app/"])
def test_app_serves_the_page_with_its_own_policy(web, path):
    response = web.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert b"<title>Workspace</title>" in response.data
    assert response.headers["Content-Security-Policy"] == APP_CSP
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers.get("ETag")


def test_the_page_revalidates_with_its_etag(web):
    etag = web.get("/app").headers["ETag"]
    assert web.get("/app", headers={"If-None-Match": etag}).status_code == 304


def test_the_page_has_no_inline_script_and_loads_nothing_from_elsewhere(web):
    html = web.get("/app").get_data(as_text=True)
    for tag in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S):
        assert not tag.strip(), "inline script"
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith(("/app/static/", "data:")), url


def test_every_asset_the_page_names_loads_with_its_type(web):
    html = web.get("/app").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="(/app/static/[^"]+)"', html)
    assert len(assets) == 3
    for url in assets:
        response = web.get(url)
        assert response.status_code == 200, url
        expected = "text/css" if url.endswith(".css") else "text/javascript"
        assert response.mimetype == expected, url
        assert response.headers["Content-Security-Policy"] == APP_CSP


def test_every_module_import_resolves_to_a_served_file(web):
    """A typo in an import path would only show in a browser; catch it here."""
    modules = sorted((STATIC / "js").glob("*.js"))
    assert modules
    for module in modules:
        source = module.read_text()
        for target in re.findall(r'^import .* from "(\.\.?/[^"]+)";$', source, re.M):
            url = posixpath.normpath(f"/app/static/js/{target}")
            assert web.get(url).status_code == 200, f"{module.name} imports {target}"


def test_the_vendored_client_is_the_pinned_version(web):
    response = web.get(f"/app/static/vendor/socket.io-client-{SOCKETIO_CLIENT_VERSION}/socket.io.min.js")
    assert response.status_code == 200
    assert response.data.startswith(f"/*!\n * Socket.IO v{SOCKETIO_CLIENT_VERSION}".encode())
    pinned = json.loads((ROOT / "js" / "package.json").read_text())["dependencies"]["socket.io-client"]
    assert pinned == SOCKETIO_CLIENT_VERSION


def test_a_missing_asset_is_the_json_404(web):
    response = web.get("/app/static/nope.js")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_no_path_escapes_the_static_folder(web):
    response = web.get("/app/static/../__init__.py")
    assert response.status_code == 404
    assert b"Blueprint" not in response.data
