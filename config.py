"""Configuration, read from the environment only.

Three classes: `DevelopmentConfig` (the embedded default: SQLite and in-process fallbacks when DATABASE_URL /
REDIS_URL are unset), `TestingConfig` and `ProductionConfig` (refuses to start on default secrets). `APP_ENV`
chooses one; `load_config()` builds it from `os.environ` at call time so tests can change the environment.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import zlib
from collections import Counter


class ConfigError(RuntimeError):
    """The environment does not describe a runnable configuration."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _bool(name: str, default: bool = False) -> bool:
    raw = _env(name)
    return default if raw is None else raw.strip().lower() in {"1", "true", "yes", "on"}


def database_url(raw: str | None) -> str | None:
    """Normalise a DATABASE_URL: Heroku's `postgres://` is refused by SQLAlchemy 1.4+."""
    if raw and raw.startswith("postgres://"):
        return "postgresql://" + raw[len("postgres://"):]
    return raw


class Config:
    """Settings shared by every environment; each value comes from the variable of the same name."""

    APP_ENV = "development"
    DEFAULT_CORS = "*"

    def __init__(self) -> None:
        self.SECRET_KEY = _env("SECRET_KEY") or secrets.token_urlsafe(32)
        self.JWT_SECRET_KEY = _env("JWT_SECRET_KEY") or secrets.token_urlsafe(32)
        self.SECRETS_FROM_ENV = bool(_env("SECRET_KEY") and _env("JWT_SECRET_KEY"))

        # None means "SQLite file in the instance folder"; the factory fills it in.
        self.SQLALCHEMY_DATABASE_URI = database_url(_env("DATABASE_URL"))
        self.SQLALCHEMY_ENGINE_OPTIONS = {
            # False: a connection is pinged only after it sat idle (workspace/db_pool.py), not on every checkout.
            "pool_pre_ping": _bool("DB_POOL_PRE_PING", False),
            "pool_size": _int("DB_POOL_SIZE", 10),
            "max_overflow": _int("DB_MAX_OVERFLOW", 20),
            "pool_recycle": 1800,
            # Never SQL parameters (password hashes, emails) in logs or error messages.
            "hide_parameters": True,
        }
        self.REDIS_URL = _env("REDIS_URL")
        # Every Redis key, the Socket.IO channel and the RQ queue are namespaced by this, so several deployments
        # (or test runs) can share one Redis.
        self.REDIS_KEY_PREFIX = _env("REDIS_KEY_PREFIX", "workspace:")
        self.SOCKETIO_CHANNEL = _env("SOCKETIO_CHANNEL", "flask-socketio")
        self.RQ_QUEUE = _env("RQ_QUEUE", "workspace")
        # eventlet or gevent under gunicorn (wsgi.py sets it to match its monkey-patching); threading elsewhere.
        self.ASYNC_MODE = _env("ASYNC_MODE", "threading")

        self.ACCESS_TOKEN_MINUTES = _int("ACCESS_TOKEN_MINUTES", 15)
        self.REFRESH_TOKEN_DAYS = _int("REFRESH_TOKEN_DAYS", 30)
        self.AUTH_RATE_LIMIT = _env("AUTH_RATE_LIMIT", "5 per minute")
        self.RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
        self.TRUSTED_PROXIES = _int("TRUSTED_PROXIES", 0)
        self.BEHIND_TLS_PROXY = _bool("BEHIND_TLS_PROXY", False)
        self.CORS_ORIGINS = [o.strip() for o in (_env("CORS_ORIGINS", self.DEFAULT_CORS) or "").split(",") if o.strip()]

        self.JOB_MAX_ATTEMPTS = _int("JOB_MAX_ATTEMPTS", 3)
        self.JOB_BACKOFF_BASE_SECONDS = float(_env("JOB_BACKOFF_BASE_SECONDS", "2"))
        # A running job's worker renews its lease; a lease this old means the worker died and the job is retried.
        self.JOB_LEASE_SECONDS = float(_env("JOB_LEASE_SECONDS", "30"))
        # How often each worker looks for lost jobs (expired leases, overdue jobs missing from RQ).
        self.JOB_REAPER_INTERVAL_SECONDS = _int("JOB_REAPER_INTERVAL_SECONDS", 10)
        # "simple" (no fork per job; the measured production choice) or "fork" (RQ's default Worker).
        self.JOB_WORKER_CLASS = _env("JOB_WORKER_CLASS", "simple")
        # RQ's Redis when it is not REDIS_URL (unset: REDIS_URL). Jobs run in-process when REDIS_URL is unset.
        self.RQ_REDIS_URL = _env("RQ_REDIS_URL")
        # Jobs one user may have queued, running or retrying at once (0: no limit); past it POST /jobs/run is a 429.
        self.JOB_MAX_IN_FLIGHT_PER_USER = _int("JOB_MAX_IN_FLIGHT_PER_USER", 20)
        self.PRESENCE_TTL_SECONDS = _int("PRESENCE_TTL_SECONDS", 30)
        self.CURSOR_RATE_PER_SECOND = _int("CURSOR_RATE_PER_SECOND", 30)
        # Budget per socket for join/leave/FILE_CHANGE (twice this as a burst); beyond it, rate_limited acks.
        self.SOCKET_EVENT_RATE_PER_SECOND = _int("SOCKET_EVENT_RATE_PER_SECOND", 50)
        # Off: the Sec-WebSocket-Extensions offer is stripped (PITFALLS: websocket compression).
        self.WEBSOCKET_COMPRESSION = _bool("WEBSOCKET_COMPRESSION", False)
        # --- realtime fan-out, backpressure and replay (docs/realtime.md) ---
        # Connections per Redis pool (the app's store, the rate limiter's); past it a caller waits for a free one...
        self.REDIS_MAX_CONNECTIONS = _int("REDIS_MAX_CONNECTIONS", 50)
        # ...at most this many seconds, then the operation fails (service_unavailable) instead of piling up.
        self.REDIS_POOL_TIMEOUT = float(_env("REDIS_POOL_TIMEOUT", "5"))
        # Events of one socket waiting to be handled (in order); past it, `rate_limited` acks (cursors coalesce).
        self.SOCKET_BACKLOG = _int("SOCKET_BACKLOG", 64)
        # Room events kept per project for `join {since_seq}` (at least this many, Redis trims approximately)...
        self.REALTIME_HISTORY_EVENTS = _int("REALTIME_HISTORY_EVENTS", 1000)
        # ...for at least this long after the project's last event; older gaps get `resync: true`.
        self.REALTIME_HISTORY_SECONDS = _int("REALTIME_HISTORY_SECONDS", 600)
        # After SIGTERM has cleared presence and closed the sockets: how long in-flight HTTP requests may finish.
        self.SHUTDOWN_DRAIN_SECONDS = _int("SHUTDOWN_DRAIN_SECONDS", 5)
        self.PROJECT_LIST_CACHE_SECONDS = _int("PROJECT_LIST_CACHE_SECONDS", 300)
        self.MAX_FILE_BYTES = _int("MAX_FILE_BYTES", 1024 * 1024)
        # Room for a full-size file plus its JSON escaping; anything larger is refused with 413 before parsing.
        self.MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 3 * self.MAX_FILE_BYTES)
        # Co-editing (docs/coediting.md): largest Yjs update an editor may send, in bytes; beyond it `too_large`.
        self.COEDIT_MAX_UPDATE_BYTES = _int("COEDIT_MAX_UPDATE_BYTES", 2 * self.MAX_FILE_BYTES)
        # Co-editing: largest awareness-update message (carets, names), in bytes.
        self.COEDIT_MAX_AWARENESS_BYTES = _int("COEDIT_MAX_AWARENESS_BYTES", 8192)
        # Co-editing: awareness updates relayed per second per socket (burst twice that); the excess is dropped.
        self.COEDIT_AWARENESS_RATE_PER_SECOND = _int("COEDIT_AWARENESS_RATE_PER_SECOND", 20)
        # Co-editing: seconds over which a document's awareness messages (carets) are merged into one relayed message
        # (the latest state per client); 0 relays each message at once.
        self.COEDIT_AWARENESS_TICK = float(_env("COEDIT_AWARENESS_TICK", "0.05"))
        # Co-editing: refused messages (invalid_update, too_large) a socket may send before it is disconnected.
        self.COEDIT_MAX_STRIKES = _int("COEDIT_MAX_STRIKES", 5)
        # Co-editing: stored updates since the last snapshot that make a document due for compaction (an RQ job).
        self.COEDIT_COMPACT_THRESHOLD = _int("COEDIT_COMPACT_THRESHOLD", 500)
        # Co-editing: decoded documents each web process keeps in memory (least recently used dropped first).
        self.COEDIT_CACHE_DOCUMENTS = _int("COEDIT_CACHE_DOCUMENTS", 256)
        # Co-editing: at most one FILE_CHANGE per document per this many seconds for typing (REST writes: each one).
        self.COEDIT_FILE_CHANGE_INTERVAL = float(_env("COEDIT_FILE_CHANGE_INTERVAL", "1"))
        # Co-editing (PostgreSQL): true makes each editor's update wait for its WAL flush on commit, as REST and
        # FILE_CHANGE writes always do. false (the default): committed, visible and relayed at once, flushed by the
        # WAL writer within 3 x wal_writer_delay; only a crash of PostgreSQL itself in that window can lose them, and
        # the editors, who hold them, store them again when they resync (docs/coediting.md, Durability).
        self.COEDIT_SYNCHRONOUS_COMMIT = _bool("COEDIT_SYNCHRONOUS_COMMIT", False)
        self.ARGON2_TIME_COST = _int("ARGON2_TIME_COST", 3)
        self.ARGON2_MEMORY_KIB = _int("ARGON2_MEMORY_KIB", 65536)
        # Argon2 computations a process runs at once (in OS threads); more wait their turn, so hashing cannot take
        # every core from the hub's thread (httpperf, issue 13's abuse mix).
        self.PASSWORD_HASH_CONCURRENCY = _int("PASSWORD_HASH_CONCURRENCY", 1)
        # Seconds a pooled database connection may sit idle and be reused without a ping first (workspace/db_pool.py).
        self.DB_IDLE_PING_SECONDS = float(_env("DB_IDLE_PING_SECONDS", "5"))
        # PostgreSQL: the co-editing write's statements are prepared once per connection (workspace/db_prepared.py).
        # false behind a pooler that hands a session's transactions to different server connections (PgBouncer in
        # transaction mode), where a prepared statement is not there the next time.
        self.DB_PREPARED_STATEMENTS = _bool("DB_PREPARED_STATEMENTS", True)
        # PostgreSQL: longest wait for a row or advisory lock, in milliseconds (0: no limit). Past it the request
        # answers 503 service_unavailable (a socket event `service_unavailable`, an editor `unavailable`) instead of
        # hanging behind a stuck transaction; a migration waiting this long fails the release instead of queueing
        # every query behind its lock.
        self.DB_LOCK_TIMEOUT_MS = _int("DB_LOCK_TIMEOUT_MS", 10000)
        self.LOG_LEVEL = _env("LOG_LEVEL", "INFO")
        # The `process` label of per-process metrics: set it per process (web1, web2); Heroku's DYNO works as is.
        self.PROCESS_NAME = _env("PROCESS_NAME") or _env("DYNO") or f"{socket.gethostname()}:{os.getpid()}"

        # Socket security (docs/security.md, "Sockets"). Seconds an expired socket has to send `auth` with a fresh
        # access token before it is disconnected.
        self.SOCKET_TOKEN_GRACE_SECONDS = float(_env("SOCKET_TOKEN_GRACE_SECONDS", "10"))
        # Seconds an Engine.IO session may stay open without completing a Socket.IO CONNECT.
        self.SOCKET_CONNECT_TIMEOUT_SECONDS = float(_env("SOCKET_CONNECT_TIMEOUT_SECONDS", "10"))
        # Engine.IO heartbeat: seconds from a client's answer (or its handshake) to the server's next ping.
        self.SOCKET_PING_INTERVAL_SECONDS = _int("SOCKET_PING_INTERVAL_SECONDS", 25)
        # Seconds a client has to answer a ping before the server closes its socket.
        self.SOCKET_PING_TIMEOUT_SECONDS = _int("SOCKET_PING_TIMEOUT_SECONDS", 20)
        # Most binary attachments one Socket.IO packet may announce.
        self.SOCKET_MAX_ATTACHMENTS = _int("SOCKET_MAX_ATTACHMENTS", 4)
        # Most bytes the binary attachments of one Socket.IO packet may carry in total (default MAX_CONTENT_LENGTH).
        self.SOCKET_MAX_ATTACHMENT_BYTES = _int("SOCKET_MAX_ATTACHMENT_BYTES", self.MAX_CONTENT_LENGTH)
        # Testing only (APP_ENV=testing): named pause points the security tests use to force an interleaving.
        self.FAILPOINTS = frozenset(p.strip() for p in (_env("FAILPOINTS", "") or "").split(",") if p.strip())

        # REST bodies and socket payloads nested deeper than this are a 400 invalid_json (an error ack on sockets).
        self.JSON_MAX_DEPTH = _int("JSON_MAX_DEPTH", 64)
        # Integers in REST bodies and socket payloads longer than this many digits (and numbers overflowing to
        # infinity) are a 422 number_too_large.
        self.JSON_MAX_INT_DIGITS = _int("JSON_MAX_INT_DIGITS", 64)
        # Failed logins one account may have (from any address) before each further attempt waits a backoff.
        self.LOGIN_FAILURES_BEFORE_BACKOFF = _int("LOGIN_FAILURES_BEFORE_BACKOFF", 5)
        # Seconds of the first backoff; each further failure doubles it, up to LOGIN_BACKOFF_MAX_SECONDS.
        self.LOGIN_BACKOFF_BASE_SECONDS = _int("LOGIN_BACKOFF_BASE_SECONDS", 2)
        # The longest an account's logins wait after repeated failures.
        self.LOGIN_BACKOFF_MAX_SECONDS = _int("LOGIN_BACKOFF_MAX_SECONDS", 900)
        # An account's failure count is forgotten this many seconds after its last failure.
        self.LOGIN_FAILURE_WINDOW_SECONDS = _int("LOGIN_FAILURE_WINDOW_SECONDS", 900)
        # Files one project may hold (0: no limit); past it a new file is a 413 file_quota_exceeded.
        self.MAX_FILES_PER_PROJECT = _int("MAX_FILES_PER_PROJECT", 1000)
        # Bytes all files of one project may total (0: no limit); past it a growing write is a 413.
        self.MAX_PROJECT_BYTES = _int("MAX_PROJECT_BYTES", 100 * 1024 * 1024)
        # Production serves /metrics only to `Authorization: Bearer <METRICS_TOKEN>`; unset there: /metrics is a 404.
        self.METRICS_TOKEN = _env("METRICS_TOKEN")

        # Fixed library settings derived from the above.
        self.SQLALCHEMY_TRACK_MODIFICATIONS = False
        self.JSON_SORT_KEYS = False
        self.API_TITLE = "workspace"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/"
        self.OPENAPI_JSON_PATH = "openapi.json"
        self.OPENAPI_SWAGGER_UI_PATH = "docs"
        self.OPENAPI_SWAGGER_UI_URL = "/docs/assets/"
        self.JWT_TOKEN_LOCATION = ["headers"]
        self.JWT_ALGORITHM = "HS256"
        self.JWT_DECODE_ALGORITHMS = ["HS256"]
        self.PROPAGATE_EXCEPTIONS = False

    @property
    def TESTING(self) -> bool:  # noqa: N802 - Flask's name
        return self.APP_ENV == "testing"

    def validate(self) -> None:
        """Raise ConfigError when this configuration must not serve."""


class DevelopmentConfig(Config):
    """The embedded default: one process, SQLite and in-process fallbacks unless URLs are given."""


class TestingConfig(Config):
    APP_ENV = "testing"

    def __init__(self) -> None:
        super().__init__()
        # Hashing strength is not under test; a cheap hash keeps the suite fast.
        self.ARGON2_TIME_COST = _int("ARGON2_TIME_COST", 1)
        self.ARGON2_MEMORY_KIB = _int("ARGON2_MEMORY_KIB", 1024)


class ProductionConfig(Config):
    APP_ENV = "production"
    DEFAULT_CORS = ""

    def validate(self) -> None:
        if not self.SECRETS_FROM_ENV:
            raise ConfigError("production needs SECRET_KEY and JWT_SECRET_KEY set in the environment")
        problems = [f"{name} {problem}" for name in ("SECRET_KEY", "JWT_SECRET_KEY")
                    if (problem := secret_problem(getattr(self, name)))]
        if problems:
            raise ConfigError("; ".join(problems) + ". Generate each with: "
                              "python -c \"import secrets; print(secrets.token_urlsafe(48))\"")


# --- signing-key checks (production) ----------------------------------------------------------------------------
# The placeholders published in .env.example (tests/security keeps this list equal to that file); anyone who read the
# repository could sign tokens with them.
PUBLISHED_SECRETS = frozenset({"change-me-to-a-long-random-string", "change-me-to-another-long-random-string"})
PLACEHOLDER_MARKERS = ("change-me", "changeme", "change_me")
SECRET_MIN_LENGTH = 32
# Estimated from the key's own characters (length x Shannon entropy per character): 32 hex digits score ~118,
# secrets.token_urlsafe(32) ~200, "abcd" * 8 exactly 64.
SECRET_MIN_BITS = 100


def secret_problem(value: str) -> str | None:
    """Why `value` must not sign anything in production (a published placeholder, too short, low entropy), or None."""
    lowered = value.lower()
    if value in PUBLISHED_SECRETS or any(marker in lowered for marker in PLACEHOLDER_MARKERS):
        return "is a published placeholder (from .env.example or containing 'change-me')"
    if len(value) < SECRET_MIN_LENGTH:
        return f"is too short ({len(value)} characters; {SECRET_MIN_LENGTH} at least)"
    counts = Counter(value)
    bits = -sum(n * math.log2(n / len(value)) for n in counts.values())
    # A repeated pattern keeps its per-character entropy but compresses away: judge by what is left.
    compressed = len(zlib.compress(value.encode(), 9)) - 8  # zlib's header and checksum
    if bits < SECRET_MIN_BITS:
        return f"has too little entropy (about {int(bits)} bits; {SECRET_MIN_BITS} at least)"
    if compressed < len(value) // 2:
        return "has too little entropy (a repeated pattern)"
    return None


CONFIGS = {"development": DevelopmentConfig, "testing": TestingConfig, "production": ProductionConfig}


def load_config(app_env: str | None = None) -> Config:
    """Build the configuration named by `app_env` (default: $APP_ENV, else development) and validate it."""
    name = (app_env or _env("APP_ENV", "development")).lower()
    if name not in CONFIGS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(CONFIGS)}, got {name!r}")
    config = CONFIGS[name]()
    config.validate()
    return config
