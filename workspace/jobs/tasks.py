"""The functions RQ runs. Importing this module builds nothing; the first task in a process builds the app.

Each process (and each forked work horse) gets its own database connections: a horse inherits its parent's pool,
and sharing those sockets across processes corrupts them (the "decryption failed or bad record mac" pitfall), so
the pool is dropped, without closing the parent's connections, the first time a new process runs a task.
"""

from __future__ import annotations

import os
import time

from flask import Flask

_state: dict = {"app": None, "pid": None}


def worker_app() -> Flask:
    """The worker process's app, with a write-only Socket.IO emitter for JOB_UPDATE (no server runs here)."""
    app = _state["app"]
    if app is None:
        from flask_socketio import SocketIO

        from workspace import create_app

        app = create_app()
        if app.config.get("REDIS_URL"):
            # Same channel as the web processes, or the events never reach their clients.
            # threading: left to auto-detect it would pick eventlet (installed) in this unpatched process.
            app.extensions["socketio_emitter"] = SocketIO(message_queue=app.config["REDIS_URL"],
                                                          channel=app.config["SOCKETIO_CHANNEL"],
                                                          async_mode="threading")
        _state.update(app=app, pid=os.getpid())
    elif _state["pid"] != os.getpid():
        from workspace.extensions import db

        with app.app_context():
            db.engine.dispose(close=False)
        _state["pid"] = os.getpid()
    return app


def run_job(job_id: int, attempt: int) -> str:
    """RQ entry point: run `attempt` of job `job_id` (see execution.execute)."""
    from .execution import execute

    with worker_app().app_context():
        return execute(job_id, attempt, sleep=time.sleep)
