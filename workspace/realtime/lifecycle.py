"""gunicorn worker hooks for the realtime runtime (wired in gunicorn.conf.py's `post_worker_init`).

At boot the heartbeat and reaper start at once (so a process with no clients of its own still reaps crashed
peers). On SIGTERM gunicorn only flips `worker.alive` and then waits up to graceful_timeout for open connections,
which websockets never close on their own; so the signal also starts the realtime shutdown right away: the
process's users leave their rooms (USER_LEAVE on every process) and its sockets are closed for clients to
reconnect elsewhere.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterable
from typing import Any

from . import runtime

log = logging.getLogger(__name__)


def on_worker_started(worker) -> None:
    app = worker.wsgi
    rt: runtime.Runtime = app.extensions["realtime"]
    try:
        rt.ensure_started()
    except Exception:  # Redis down at boot: the first connect or the loop retries
        rt.started = False
        log.exception("realtime heartbeat could not start at boot")
    original = worker.handle_exit

    def handle_exit(sig, frame) -> None:
        original(sig, frame)
        # Websockets never finish on their own, and some keep the worker's connection pool busy even after being
        # closed, so gunicorn would wait out the whole graceful_timeout: once the sockets are handed back to the
        # clients, in-flight HTTP requests get SHUTDOWN_DRAIN_SECONDS to finish.
        drain = app.config["SHUTDOWN_DRAIN_SECONDS"]
        if drain < worker.cfg.graceful_timeout:
            worker.cfg.set("graceful_timeout", drain)
        rt.server.start_background_task(rt.shutdown)

    worker.handle_exit = handle_exit
    signal.signal(signal.SIGTERM, handle_exit)


class ClosingGate:
    """WSGI middleware: once the runtime is shutting down, Socket.IO requests get 503, so clients cannot reconnect
    to this process (their retry finds another one behind the proxy) and the worker exits as soon as the sockets it
    closed are gone, instead of waiting out gunicorn's graceful timeout."""

    def __init__(self, app: Callable[..., Iterable[bytes]], rt: runtime.Runtime, path: str = "/socket.io") -> None:
        self.app = app
        self.rt = rt
        self.path = path

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if self.rt.closing and environ.get("PATH_INFO", "").startswith(self.path):
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Connection", "close"),
                                                       ("Retry-After", "1")])
            return [b"shutting down"]
        return self.app(environ, start_response)
