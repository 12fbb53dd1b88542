"""Attack: crash REST views with JSON the parser chokes on.

Issue 10 found JSON nested ~1,000 deep and integers of 4,400+ digits escaping validation as 500s with a traceback.
Against a live web process, on every route that takes a body: deep nesting is a 400 `invalid_json`, a huge number
a 422, never a 500; the log holds no traceback.
"""

from __future__ import annotations

import pytest
import requests
from security_stack import signup, webs

pytestmark = pytest.mark.live


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


BOMBS = {
    "nested 1,000 deep": (deep(1000), 400, "invalid_json"),
    "nested 100,000 deep": (deep(100_000), 400, "invalid_json"),
    "nested objects": ('{"a":' * 200 + "1" + "}" * 200, 400, "invalid_json"),
    "4,400-digit integer": ("9" * 4400, 422, "number_too_large"),
    "100-digit negative integer": ("-" + "7" * 100, 422, "number_too_large"),
    "float overflowing to infinity": ("1e999", 422, "number_too_large"),
    "NaN": ("NaN", 400, "invalid_json"),
}


def routes(base: str) -> list[tuple[str, str, str, str]]:
    """(method, url, template, token) for each route with a JSON body; `{}` in the template takes the bomb."""
    owner = signup(base)
    token = owner["access_token"]
    project = requests.post(f"{base}/api/v1/projects/", json={"name": "Target"}, headers=owner["headers"], timeout=10)
    pid = project.json()["id"]
    return [
        ("POST", "/api/v1/auth/signup", '{{"email": "x@example.com", "password": "long enough", "name": {}}}', ""),
        ("POST", "/api/v1/auth/login", '{{"email": {}, "password": "x"}}', ""),
        ("POST", "/api/v1/auth/logout", '{{"refresh_token": {}}}', token),
        ("POST", "/api/v1/projects/", '{{"name": "P", "description": {}}}', token),
        ("PATCH", f"/api/v1/projects/{pid}", '{{"name": {}}}', token),
        ("POST", f"/api/v1/projects/{pid}/collaborators", '{{"email": "a@example.com", "role": {}}}', token),
        ("PUT", f"/api/v1/projects/{pid}/files/a.txt", '{{"content": "x", "base_version": {}}}', token),
        ("POST", "/api/v1/jobs/run", f'{{{{"project_id": {pid}, "type": "echo", "payload": {{}}}}}}', token),
    ]


def test_json_bombs_are_client_errors_on_every_route(live_env, processes):
    (base,) = webs({**live_env, "LOG_LEVEL": "DEBUG"}, processes, count=1)
    web = processes[-1]
    for method, path, template, token in routes(base):
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        for name, (bomb, status, code) in BOMBS.items():
            response = requests.request(method, base + path, data=template.format(bomb), headers=headers, timeout=30)
            assert response.status_code == status, (method, path, name, response.status_code, response.text[:300])
            assert response.json()["error"]["code"] == code, (path, name)
    assert "Traceback" not in web.output()
    assert '"internal_error"' not in web.output()
