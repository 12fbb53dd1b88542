"""Attacks: scrape `/metrics` of a production deployment from outside; inject a script into the web client.

Issue 10 found `/metrics` public in production and the `/app` policy allowing `'unsafe-inline'` scripts and
websockets to any host. Against production web processes: metrics need the METRICS_TOKEN bearer (and are a 404
while it is unset), and every response of the web client carries a policy without inline script whose connections
stay on its own origin.
"""

from __future__ import annotations

import re

import pytest
import requests
from security_stack import bearer, production, webs

pytestmark = pytest.mark.live
TOKEN = "scrape-token-8d1c0e5f2a7b4e93a6c1d2f0b9e8a7c6"


def test_production_metrics_need_the_metrics_token(live_env, processes):
    (base,) = webs(production(live_env, METRICS_TOKEN=TOKEN), processes, count=1)
    url = f"{base}/metrics"
    for headers in ({}, bearer(TOKEN[:-1]), bearer(TOKEN + "x"), {"Authorization": TOKEN}, bearer("")):
        refused = requests.get(url, headers=headers, timeout=10)
        assert refused.status_code == 401, (headers, refused.text[:200])
        assert refused.json()["error"]["code"] == "unauthorized"
        assert "workspace_http_requests" not in refused.text
    served = requests.get(url, headers=bearer(TOKEN), timeout=10)
    assert served.status_code == 200
    assert "workspace_http_requests_total" in served.text


def test_production_without_a_metrics_token_does_not_serve_metrics(live_env, processes):
    (base,) = webs(production(live_env), processes, count=1)
    for headers in ({}, bearer("anything"), bearer("")):
        response = requests.get(f"{base}/metrics", headers=headers, timeout=10)
        assert response.status_code == 404, response.text[:200]
        assert response.json()["error"]["code"] == "not_found"


def directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def test_the_web_client_allows_no_inline_script_and_only_its_own_origin(live_env, processes):
    (base,) = webs(production(live_env), processes, count=1)
    page = requests.get(f"{base}/app", timeout=10)
    assets = re.findall(r'(?:src|href)="(/app/static/[^"]+)"', page.text)
    assert assets
    for response in [page, *(requests.get(base + url, timeout=10) for url in assets)]:
        assert response.status_code == 200
        policy = directives(response.headers["Content-Security-Policy"])
        script = policy.get("script-src", policy["default-src"])
        connect = policy.get("connect-src", policy["default-src"])
        assert script == ["'self'"], response.url
        assert connect == ["'self'"], response.url  # no ws:, wss: or other hosts
        assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
        assert policy["frame-ancestors"] == ["'none'"]
