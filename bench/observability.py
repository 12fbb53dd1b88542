"""What observability costs: per-request overhead of the request-id, JSON access log and metrics hooks, and the time
of one `/metrics` scrape as the jobs table grows. In-process (Flask test client) against the real PostgreSQL and
Redis of the test setup, on a schema and key prefix of its own that are dropped afterwards. Bounded: a few thousand
requests and 20 scrapes per size.

    python bench/observability.py        (or: make bench-observability)
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
import uuid

import sqlalchemy as sa
from sandbox import drop_sandbox

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("APP_ENV", "testing")

from flask_migrate import upgrade  # noqa: E402

from workspace import create_app  # noqa: E402
from workspace.extensions import db  # noqa: E402
from workspace.models import Job, JobStatus, Membership, Project, Role, User  # noqa: E402
from workspace.observability import logging as json_logging  # noqa: E402
from workspace.observability import metrics, request_id  # noqa: E402

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUESTS = 3000
SCRAPES = 20


def per_request_us(client, n: int = REQUESTS) -> float:
    for _ in range(200):
        client.get("/healthz")
    start = time.perf_counter()
    for _ in range(n):
        client.get("/healthz")
    return (time.perf_counter() - start) / n * 1e6


def without_observability(app) -> None:
    """Remove the three hooks' functions from the app (the rest of the stack stays)."""
    app.before_request_funcs[None] = [f for f in app.before_request_funcs[None] if f is not request_id._assign]
    hooks = {request_id._echo, json_logging._log_request, metrics._observe_request}
    app.after_request_funcs[None] = [f for f in app.after_request_funcs[None] if f not in hooks]


def main() -> None:
    schema = f"bench_obs_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    settings = {"SQLALCHEMY_DATABASE_URI": f"{PG_URL}?options=-csearch_path%3D{schema}", "REDIS_URL": REDIS_URL,
                "REDIS_KEY_PREFIX": prefix, "RQ_QUEUE": prefix + "jobs", "SOCKETIO_CHANNEL": prefix + "sio",
                "LOG_LEVEL": "INFO"}
    devnull = open(os.devnull, "w")  # noqa: SIM115 - the JSON lines are written, then thrown away
    real_stderr, sys.stderr = sys.stderr, devnull
    try:
        app = create_app(settings)
        with app.app_context():
            upgrade(directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
        client = app.test_client()
        with_hooks = per_request_us(client)
        bare = create_app(settings)
        without_observability(bare)
        without_hooks = per_request_us(bare.test_client())

        scrape_ms = {}
        with app.app_context():
            user = User(email="bench@example.com", name="bench", password_hash="x")
            db.session.add(user)
            db.session.flush()
            project = Project(name="bench", owner_id=user.id)
            db.session.add(project)
            db.session.flush()
            db.session.add(Membership(project_id=project.id, user_id=user.id, role=Role.OWNER))
            db.session.commit()
            project_id, user_id = project.id, user.id
        inserted = 0
        statuses = list(JobStatus)
        for size in (0, 1_000, 10_000, 100_000):
            with app.app_context():
                rows = [{"project_id": project_id, "user_id": user_id, "type": ("echo", "sleep", "export")[i % 3],
                         "payload": {}, "status": statuses[i % len(statuses)], "attempts": 1, "max_attempts": 3}
                        for i in range(inserted, size)]
                if rows:
                    db.session.execute(sa.insert(Job), rows)
                    db.session.commit()
                inserted = size
            times = []
            for _ in range(SCRAPES):
                start = time.perf_counter()
                assert client.get("/metrics").status_code == 200
                times.append((time.perf_counter() - start) * 1000)
            scrape_ms[size] = statistics.median(times)
    finally:
        sys.stderr = real_stderr
        logging.getLogger().handlers.clear()
        drop_sandbox(admin, schema, REDIS_URL, prefix)

    print(f"GET /healthz, in-process, {REQUESTS} requests each:")
    print(f"  with request id + JSON access log + metrics: {with_hooks:7.1f} µs/request")
    print(f"  without them:                                {without_hooks:7.1f} µs/request")
    print(f"  overhead:                                    {with_hooks - without_hooks:7.1f} µs/request")
    print(f"GET /metrics, median of {SCRAPES} scrapes:")
    for size, ms in scrape_ms.items():
        print(f"  {size:>7} job rows: {ms:6.1f} ms")


if __name__ == "__main__":
    main()
