"""Fixtures shared by the whole suite.

Isolation: each test session migrates its own PostgreSQL schema (dropped at the end) and every test gets its own
Redis key prefix, Socket.IO channel and RQ queue name, and an emptied schema; so the suite can run twice in a row,
in any order, and beside another run on the same services. PostgreSQL and Redis are required: an unreachable one is
an error, never a skip.
"""

from __future__ import annotations

import os
import uuid
from types import SimpleNamespace

import pytest
import redis
import sqlalchemy as sa

from services import PG_URL, REDIS_URL, schema_url
from workspace import create_app
from workspace.extensions import db

# Fixtures of the in-process socket tests (sio_app, sio_connect, sio_team...) for the tests/test_realtime_*.py files.
# Fixtures of the live and security tiers' socket tests (clients, team; stop_webs_together).
pytest_plugins = ["realtime_inprocess", "realtime_live", "socket_attacks"]

os.environ["APP_ENV"] = "testing"
TABLES = ["job_artifacts", "jobs", "project_files", "memberships", "projects", "users"]


@pytest.fixture(scope="session")
def pg_schema():
    name = f"test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_URL} is required for the suite: {exc}", pytrace=False)
    yield name
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(pg_schema) -> str:
    """The session's PostgreSQL URL, its search_path pinned to the session's schema, migrated to head."""
    from flask_migrate import upgrade

    url = schema_url(PG_URL, pg_schema)
    app = create_app(_overrides(url, "test:migrate:"))
    with app.app_context():
        upgrade(directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
        db.engine.dispose()
    return url


@pytest.fixture(scope="session")
def redis_server():
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is required for the suite: {exc}", pytrace=False)
    return client


def _overrides(database_url: str, prefix: str, redis_url: str | None = REDIS_URL) -> dict:
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "SOCKETIO_CHANNEL": prefix + "socketio",
        "RQ_QUEUE": prefix + "jobs",
        # Instances of one test are one deployment: they share signing keys as processes would.
        "SECRET_KEY": "test-secret-" + prefix,
        "JWT_SECRET_KEY": "test-jwt-secret-" + prefix,
    }


@pytest.fixture
def redis_prefix(redis_server):
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    # RQ names its keys after the queue (`rq:queue:<queue>`, `rq:finished:<queue>`) and its job ids after ours
    # (`rq:job:<queue with _>-...`): those go too, so no test leaves a key behind without a TTL.
    patterns = (prefix + "*", "rq:*" + prefix + "*", "rq:*" + prefix.replace(":", "_") + "*")
    keys = {key for pattern in patterns for key in redis_server.scan_iter(match=pattern, count=1000)}
    if keys:
        redis_server.delete(*keys)


@pytest.fixture
def make_app(database_url, redis_prefix):
    """Build app instances sharing this test's database and Redis namespace (two instances = two processes)."""
    apps = []

    def factory(**overrides):
        app = create_app({**_overrides(database_url, redis_prefix), **overrides})
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(autouse=True)
def _empty_tables(request):
    """Every test starts from empty tables in the session schema."""
    yield
    if "database_url" not in request.fixturenames:
        return
    url = request.getfixturevalue("database_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def make_user(app):
    """Create a user directly (no HTTP, so the signup rate limit stays out of the way) with a token pair."""
    from workspace.auth import service, tokens

    counter = iter(range(1, 10_000))

    def factory(email: str | None = None, name: str | None = None, password: str = "correct horse battery"):
        n = next(counter)
        with app.app_context():
            user = service.signup(email or f"user{n}-{uuid.uuid4().hex[:6]}@example.com", password, name or f"User {n}")
            pair = tokens.issue_pair(user)
            return SimpleNamespace(
                id=user.id, email=user.email, name=user.name, password=password,
                access=pair["access_token"], refresh=pair["refresh_token"],
                headers={"Authorization": f"Bearer {pair['access_token']}"},
            )

    return factory


@pytest.fixture
def live_env(database_url, redis_prefix) -> dict[str, str]:
    """Environment for real child processes (gunicorn, rq, node) sharing this test's database and Redis namespace.

    Signing keys equal the in-process apps' (make_app), so tokens minted by `make_user` work against live servers.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_", "COVERAGE"))}
    overrides = _overrides(database_url, redis_prefix)
    env.update({
        "APP_ENV": "testing",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": overrides["REDIS_KEY_PREFIX"],
        "SOCKETIO_CHANNEL": overrides["SOCKETIO_CHANNEL"],
        "RQ_QUEUE": overrides["RQ_QUEUE"],
        "SECRET_KEY": overrides["SECRET_KEY"],
        "JWT_SECRET_KEY": overrides["JWT_SECRET_KEY"],
        "RATELIMIT_ENABLED": "false",
    })
    return env


@pytest.fixture
def processes():
    """Collects live processes started by a test and stops every one of them afterwards."""
    started = []
    yield started
    for proc in started:
        proc.stop()
