"""HTTP under one web process against a bare Flask peer under the same gunicorn worker, wrk as the load generator.

    python bench/rest_api.py [--async-mode eventlet|gevent]            (or: make bench-rest)

Seeds a fresh PostgreSQL schema with 10,000 projects and a user holding 1,000 memberships, starts ONE web process
exactly as the Procfile runs it and ONE bare Flask app (bench/peers/bare_flask.py) under the same worker class and
settings (127.0.0.1 only), then runs wrk (64 connections, 10 s each) against: both `/healthz`; the cached project list
(every request a cache HIT); the cold list (`Cache-Control: no-cache` makes the server read the database); and over
ONE connection `GET /api/v1/auth/me` beside the peer's `/redis-pg` (one Redis GET, one PostgreSQL SELECT, the least
/auth/me must do). Prints requests/s, p50, p99 and the ratios the targets are stated in. The schema and the Redis
keys are removed at the end.

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

from processes import BIN, Proc, free_port, start_web, wait_http  # noqa: E402

PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PROJECTS, MEMBERSHIPS, OWNERS = 10_000, 1_000, 100
LIST = "/api/v1/projects/?page=1&per_page=20"


def schema_url(schema: str) -> str:
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"


def bench_env(schema: str, prefix: str) -> dict[str, str]:
    """A production environment for the web process, confined to the benchmark's schema and Redis prefix."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("COV_", "COVERAGE"))},
            "APP_ENV": "production", "DATABASE_URL": schema_url(schema), "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": prefix, "SOCKETIO_CHANNEL": prefix + "socketio", "RQ_QUEUE": prefix + "jobs",
            "SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex, "JWT_SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
            "LOG_LEVEL": "WARNING"}


def prepare(url: str, env: dict[str, str]) -> tuple[str, int]:
    """Migrate the schema, seed it, and return an access token and the id of the 1,000-membership user."""
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
        user_id = user.id
        db.engine.dispose()
    return token, user_id


def start_peer(env: dict[str, str], async_mode: str, user_id: int) -> tuple[Proc, str]:
    """The bare Flask peer, with the product's gunicorn settings that matter here (one worker, its class,
    connections, backlog, keep-alive) and none of its hooks."""
    port = free_port()
    args = [str(BIN / "gunicorn"), "-c", str(ROOT / "bench" / "peers" / "gunicorn.conf.py"), "bare_flask:app"]
    peer_env = {**env, "ASYNC_MODE": async_mode, "BENCH_USER_ID": str(user_id), "PEER_PORT": str(port)}
    proc = Proc(args, peer_env, f"peer-{port}")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", proc=proc)
    return proc, base


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

    schema = f"bench_http_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    prefix = f"bench:{schema}:"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    env = bench_env(schema, prefix)
    procs = []
    load = Path("/proc/loadavg").read_text().split()[0]
    try:
        token, user_id = prepare(schema_url(schema), env)
        proc, base = start_web(env, async_mode=options.async_mode)
        procs.append(proc)
        peer, peer_base = start_peer(env, options.async_mode, user_id)
        procs.append(peer)
        auth = {"Authorization": f"Bearer {token}"}
        warm = requests.get(base + LIST, headers=auth, timeout=10)
        assert warm.status_code == 200 and warm.json()["total"] == MEMBERSHIPS, warm.text[:300]
        assert requests.get(base + LIST, headers=auth, timeout=10).headers["X-Cache"] == "HIT"
        cold_headers = {**auth, "Cache-Control": "no-cache"}
        assert requests.get(base + LIST, headers=cold_headers, timeout=10).headers["X-Cache"] == "MISS"
        assert requests.get(peer_base + "/redis-pg", timeout=10).json()["id"] == user_id

        c, s = options.connections, options.seconds
        rows = {
            "peer /healthz": (c, wrk(peer_base + "/healthz", c, s, {})),
            "GET /healthz": (c, wrk(base + "/healthz", c, s, {})),
            "GET /projects/ cached (HIT)": (c, wrk(base + LIST, c, s, auth)),
            "GET /projects/ cold (no-cache)": (c, wrk(base + LIST, c, s, cold_headers)),
            "peer /redis-pg": (1, wrk(peer_base + "/redis-pg", 1, s, {})),
            "GET /auth/me": (1, wrk(base + "/api/v1/auth/me", 1, s, auth)),
        }
    finally:
        for proc in procs:
            proc.stop()
        drop_sandbox(admin, schema, REDIS_URL, prefix)

    print(f"\none {options.async_mode} web process and its bare Flask peer, wrk -t1 -d{s}s; load average {load} at "
          f"the start; user with {MEMBERSHIPS:,} memberships among {PROJECTS:,} projects; page of 20\n")
    print("| request | connections | requests/s | p50 ms | p99 ms | non-2xx |\n|---|---|---|---|---|---|")
    for name, (conns, r) in rows.items():
        print(f"| {name} | {conns} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.1f} | {r['non2xx']} |")
    health, peer_health = rows["GET /healthz"][1], rows["peer /healthz"][1]
    print("\n| ratio | value | target |\n|---|---|---|")
    print(f"| /healthz ÷ bare Flask /healthz (requests/s) | {health['rps'] / peer_health['rps']:.2f} | ≥ 0.6 |")
    print(f"| cached list ÷ /healthz (requests/s) | {rows['GET /projects/ cached (HIT)'][1]['rps'] / health['rps']:.2f}"
          " | ≥ 0.5 |")
    print(f"| /healthz p99 ÷ p50 at {c} connections | {health['p99'] / health['p50']:.1f} | ≤ 4 |")
    print(f"| /auth/me p50 ÷ bare Redis GET + SELECT p50 | "
          f"{rows['GET /auth/me'][1]['p50'] / rows['peer /redis-pg'][1]['p50']:.2f} | ≤ 2 |")


if __name__ == "__main__":
    main()
