"""gunicorn settings for the web process (`gunicorn -c gunicorn.conf.py wsgi:app`).

One worker per process: Socket.IO long-polling needs every request of a session on the same process, and gunicorn
has no sticky sessions. Scale by running more processes (each its own gunicorn) behind a sticky proxy; the Redis
message queue carries events between them.
"""

import logging
import os
import resource
import warnings

from gunicorn import glogging

# The worker class follows ASYNC_MODE (eventlet by default, gevent the drop-in alternative); wsgi.py patches to match.
_ASYNC_MODE = os.environ.setdefault("ASYNC_MODE", "eventlet")
worker_class = {"eventlet": "eventlet", "gevent": "gevent"}[_ASYNC_MODE]
workers = 1
bind = f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# Each connected socket holds one of these slots, and so does every HTTP request while it runs: the worker accepts
# nothing (not even /healthz) while all are taken. gunicorn's default (1,000) would cap a process far below its
# capacity; 12,000 holds the 10,000 sockets one process is sized for with room left for requests.
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "12000"))
# Each slot is also a file descriptor, beside the process's own (Redis and PostgreSQL pools, logs, imports).
_FDS_NEEDED = worker_connections + 512
# A deep accept queue absorbs reconnect storms instead of turning them into 1 s SYN retries.
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "20"))
keepalive = 5
# gunicorn 25's control socket sits at one path per user ($HOME/.gunicorn): several web processes on one host (or a
# read-only home in the container) would fight over it, and nothing here uses `gunicornc`.
control_socket_disable = True
# gunicorn's worker heartbeat file lives in a tmpfs, not in /tmp: a read-only root filesystem (Kubernetes
# readOnlyRootFilesystem) would otherwise crash it, and a disk-backed /tmp can stall the heartbeat. (No /dev/shm, as
# on macOS: gunicorn's default, the system temp dir.) gunicorn creates its files there with mkstemp.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

# eventlet's deprecation is known and chosen (docs/deployment.md: gunicorn 25.x keeps the eventlet worker; gevent is
# the one-line way off it). Without these two, every boot logs it twice as a WARNING, once from eventlet's import
# (a Python warning, silenced here by its exact text) and once from gunicorn's eventlet worker (kept, but as INFO),
# which trains operators to ignore warnings. Any other warning still gets through.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated\.")


class _DemoteEventletNotice(logging.Filter):
    """gunicorn's "The eventlet worker is DEPRECATED" line at INFO instead of WARNING; everything else as is."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and record.getMessage().startswith("The eventlet worker is DEPRECATED"):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


# The app logs each request itself as JSON; gunicorn's own access log would duplicate it.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# gunicorn's own lines (boot, worker exits, timeouts) as JSON too, in the app's field names. Only python-json-logger
# is imported here: the master must not import the app (or anything that opens sockets) before workers monkey-patch.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": loglevel.upper(), "handlers": []},  # the app installs its own JSON handler on the root
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["json"], "propagate": False,
                           "filters": ["eventlet_notice"]},
        # The app writes one access line per request itself (with request id, route, user); not gunicorn's too.
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        # Python warnings as JSON lines too: see captureWarnings below.
        "py.warnings": {"level": "WARNING", "handlers": ["json"], "propagate": False},
    },
    "filters": {"eventlet_notice": {"()": _DemoteEventletNotice}},
    "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "formatters": {"json": {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": "%(levelname)s %(name)s %(message)s",
                            "rename_fields": {"levelname": "level", "name": "logger"}, "timestamp": "time"}},
}

logging.captureWarnings(True)


class Logger(glogging.Logger):
    """gunicorn's logger, except that it skips building an access line (a dict of 30 atoms) for every request
    whenever a `logconfig_dict` is set, as here, even though the access log is off."""

    def access(self, resp, req, environ, request_time):
        if self.cfg.accesslog:
            super().access(resp, req, environ, request_time)


logger_class = Logger


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft file-descriptor limit to `needed`, as far as the hard limit allows (never lowers
    it); the worker forked afterwards inherits it. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


def on_starting(server):
    """In the master, before the worker is forked: a soft `ulimit -n` (often 1,024) below what worker_connections
    needs would make the worker fail accepts with EMFILE long before it is full, so raise it; if the hard limit is
    too low too, say so once, at start, rather than at the first reconnect storm."""
    soft = raise_fd_limit(_FDS_NEEDED)
    if soft < _FDS_NEEDED:
        server.log.warning("file-descriptor limit %s is below the %s that worker_connections=%s needs; raise the hard "
                           "limit (ulimit -Hn, LimitNOFILE, the container's nofile)", soft, _FDS_NEEDED,
                           worker_connections)


def post_worker_init(worker):
    """Start the realtime heartbeat/reaper now, and clear this process's presence as soon as SIGTERM arrives."""
    from workspace.realtime.lifecycle import on_worker_started  # in the worker, after monkey-patching

    on_worker_started(worker)
