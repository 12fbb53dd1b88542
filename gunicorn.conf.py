"""gunicorn settings for the web process (`gunicorn -c gunicorn.conf.py wsgi:app`).

One worker per process: Socket.IO long-polling needs every request of a session on the same process, and gunicorn
has no sticky sessions. Scale by running more processes (each its own gunicorn) behind a sticky proxy; the Redis
message queue carries events between them.
"""

import logging
import os

from gunicorn import glogging

# The worker class follows ASYNC_MODE (eventlet by default, gevent the drop-in alternative); wsgi.py patches to match.
_ASYNC_MODE = os.environ.setdefault("ASYNC_MODE", "eventlet")
worker_class = {"eventlet": "eventlet", "gevent": "gevent"}[_ASYNC_MODE]
workers = 1
bind = f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# Each connected socket holds one connection; the defaults (1,000) would cap a process far below its capacity.
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "10000"))
# A deep accept queue absorbs reconnect storms instead of turning them into 1 s SYN retries.
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "20"))
keepalive = 5
# gunicorn 25's control socket sits at one path per user ($HOME/.gunicorn): several web processes on one host (or a
# read-only home in the container) would fight over it, and nothing here uses `gunicornc`.
control_socket_disable = True

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
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["json"], "propagate": False},
        # The app writes one access line per request itself (with request id, route, user); not gunicorn's too.
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        # Python warnings (eventlet's deprecation notice at import) as JSON lines too: see captureWarnings below.
        "py.warnings": {"level": "WARNING", "handlers": ["json"], "propagate": False},
    },
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


def post_worker_init(worker):
    """Start the realtime heartbeat/reaper now, and clear this process's presence as soon as SIGTERM arrives."""
    from workspace.realtime.lifecycle import on_worker_started  # in the worker, after monkey-patching

    on_worker_started(worker)
