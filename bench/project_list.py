"""Benchmark `GET /api/v1/projects/` under one gunicorn + eventlet web process, with wrk as the load generator.

    python bench/project_list.py            (or: make bench-projects)

Seeds a fresh PostgreSQL schema with 10,000 projects and a user holding 1,000 memberships, starts ONE web process
exactly as the Procfile runs it (127.0.0.1 only), then runs wrk (64 connections, 10 s each) against, in order:
`GET /healthz`, the cached list (warm: every request is a cache HIT) and the cold list (every request sends
`Cache-Control: no-cache`, which makes the server skip the cached page and read the database). The cold list is also
measured with a single connection (latency without queueing). Prints requests/s, p50 and p99, and the ratio
cached/healthz. The schema and the Redis keys are removed at the end.

Needs wrk (`apt-get install -y wrk`), PostgreSQL and Redis as the tests use them (BENCH_DATABASE_URL, BENCH_REDIS_URL).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import requests
import sqlalchemy as sa
from sandbox import drop_sandbox

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from processes import start_web  # noqa: E402

PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PROJECTS, MEMBERSHIPS, OWNERS = 10_000, 1_000, 100
LIST = "/api/v1/projects/?page=1&per_page=20"


def schema_url(schema: str) -> str:
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"


def prepare(url: str, env: dict[str, str]) -> str:
    """Migrate the schema, seed it, and return an access token of the 1,000-membership user."""
    os.environ.update({k: env[k] for k in ("APP_ENV", "SECRET_KEY", "JWT_SECRET_KEY")})
    from flask_migrate import upgrade

    from workspace import create_app
    from workspace.auth import service, tokens
    from workspace.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": REDIS_URL,
                      "REDIS_KEY_PREFIX": env["REDIS_KEY_PREFIX"], "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        user = service.signup("bench@example.com", "benchmark password", "Bench")
        seed(db.session, user.id)
        # The steady state of a live database (autovacuum): visibility map set, so counts are index-only scans.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
        token = tokens.issue_pair(user)["access_token"]
        db.engine.dispose()
    return token


def seed(session, user_id: int) -> None:
    """OWNERS users own PROJECTS projects; the bench user is a member of MEMBERSHIPS of them (every 10th)."""
    session.execute(sa.text(
        "INSERT INTO users (email, name, password_hash, created_at) "
        "SELECT 'owner' || g || '@example.com', 'Owner ' || g, 'x', now() FROM generate_series(1, :n) g"),
        {"n": OWNERS})
    session.execute(sa.text(
        "INSERT INTO projects (name, description, owner_id, created_at, updated_at) "
        "SELECT 'Project ' || g, 'Seeded project number ' || g, "
        "(SELECT min(id) FROM users WHERE email LIKE 'owner%') + g % :owners, now(), now() "
        "FROM generate_series(1, :n) g"), {"n": PROJECTS, "owners": OWNERS})
    session.execute(sa.text(
        "INSERT INTO memberships (project_id, user_id, role, added_at) "
        "SELECT id, owner_id, 'owner', now() FROM projects"))
    session.execute(sa.text(
        "INSERT INTO memberships (project_id, user_id, role, added_at) "
        "SELECT id, :user_id, (ARRAY['owner', 'collaborator', 'viewer'])[1 + id % 3], now() "
        "FROM projects WHERE id % 10 = 0"), {"user_id": user_id})
    session.commit()
    count = session.execute(sa.text("SELECT count(*) FROM memberships WHERE user_id = :u"), {"u": user_id}).scalar()
    assert count == MEMBERSHIPS, count


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, connections: int, seconds: int, headers: dict[str, str]) -> dict[str, float]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True, timeout=seconds + 30).stdout

    def latency(pct: str) -> float:
        number, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(number) * _UNITS[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": latency("50"),
            "p99": latency("99"), "non2xx": int(errors.group(1)) if errors else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--async-mode", default="eventlet", choices=["eventlet", "gevent"])
    options = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is required: apt-get install -y wrk")

    schema = f"bench_projects_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    prefix = f"bench:{schema}:"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("COV_", "COVERAGE"))},
           "APP_ENV": "production", "DATABASE_URL": schema_url(schema), "REDIS_URL": REDIS_URL,
           "REDIS_KEY_PREFIX": prefix, "SOCKETIO_CHANNEL": prefix + "socketio", "RQ_QUEUE": prefix + "jobs",
           "SECRET_KEY": uuid.uuid4().hex, "JWT_SECRET_KEY": uuid.uuid4().hex, "LOG_LEVEL": "WARNING"}
    proc = None
    try:
        token = prepare(schema_url(schema), env)
        proc, base = start_web(env, async_mode=options.async_mode)
        auth = {"Authorization": f"Bearer {token}"}
        warm = requests.get(base + LIST, headers=auth, timeout=10)
        assert warm.status_code == 200 and warm.json()["total"] == MEMBERSHIPS, warm.text[:300]
        assert requests.get(base + LIST, headers=auth, timeout=10).headers["X-Cache"] == "HIT"
        cold_headers = {**auth, "Cache-Control": "no-cache"}
        assert requests.get(base + LIST, headers=cold_headers, timeout=10).headers["X-Cache"] == "MISS"

        c, s = options.connections, options.seconds
        rows = [
            ("GET /healthz", wrk(base + "/healthz", c, s, {})),
            ("GET /projects/ cached (HIT)", wrk(base + LIST, c, s, auth)),
            ("GET /projects/ cold (no-cache)", wrk(base + LIST, c, s, cold_headers)),
            ("GET /projects/ cold, 1 connection", wrk(base + LIST, 1, s, cold_headers)),
        ]
    finally:
        if proc is not None:
            proc.stop()
        drop_sandbox(admin, schema, REDIS_URL, prefix)

    print(f"\none {options.async_mode} web process, wrk -t1 -c{c} -d{s}s; user with {MEMBERSHIPS:,} memberships "
          f"among {PROJECTS:,} projects; page of 20\n")
    print("| request | connections | requests/s | p50 ms | p99 ms | non-2xx |\n|---|---|---|---|---|---|")
    for name, r in rows:
        conns = 1 if "1 connection" in name else c
        print(f"| {name} | {conns} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['non2xx']} |")
    print(f"\ncached / healthz = {rows[1][1]['rps'] / rows[0][1]['rps']:.2f}")


if __name__ == "__main__":
    main()
