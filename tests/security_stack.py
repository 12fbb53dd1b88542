"""Live processes for the attack replays in tests/security: web processes (gunicorn, as the Procfile runs them) and a
job worker sharing the test's PostgreSQL schema and Redis namespace, plus the few HTTP steps every attack starts with.
"""

from __future__ import annotations

import secrets
import sys
import uuid

import requests

from processes import Proc, start, start_web

WORKER = [sys.executable, "-m", "workspace.jobs.worker"]
PASSWORD = "attack replay passphrase 7"


def production(live_env: dict[str, str], **extra: str) -> dict[str, str]:
    """`live_env` as production runs it: strong keys of this run's own, the contract's production defaults."""
    return {**live_env, "APP_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(48),
            "JWT_SECRET_KEY": secrets.token_urlsafe(48), **extra}


def webs(env: dict[str, str], processes: list[Proc], count: int = 2, async_mode: str = "eventlet") -> list[str]:
    """`count` web processes on one deployment (same database, Redis and keys); their base URLs."""
    bases = []
    for _ in range(count):
        proc, base = start_web(env, async_mode=async_mode)
        processes.append(proc)
        bases.append(base)
    return bases


def worker(env: dict[str, str], processes: list[Proc]) -> Proc:
    proc = start(WORKER, {**env, "JOB_BACKOFF_BASE_SECONDS": "1"}, "worker")
    processes.append(proc)
    return proc


def signup(base: str, email: str | None = None, password: str = PASSWORD, name: str = "Attacker") -> dict:
    """A new account through the API: `{user, access_token, refresh_token, headers}`."""
    email = email or f"{uuid.uuid4().hex[:10]}@example.com"
    response = requests.post(f"{base}/api/v1/auth/signup", timeout=30,
                             json={"email": email, "password": password, "name": name})
    assert response.status_code == 201, response.text
    body = response.json()
    return {**body, "email": email, "password": password, "headers": bearer(body["access_token"])}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
