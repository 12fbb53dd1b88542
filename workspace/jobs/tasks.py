"""The functions RQ runs: the task (`run_job`) and the job's success and failure callbacks, which write the row.

Each process (and each forked work horse) gets its own database connections: a horse inherits its parent's pool,
and sharing those sockets across processes corrupts them (the "decryption failed or bad record mac" pitfall), so
the pool is dropped, without closing the parent's connections, the first time a new process runs a task.
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import UTC, datetime

from flask import Flask, has_app_context
from flask_socketio import SocketIO
from rq.exceptions import AbandonedJobError
from rq.job import Job as RQJob
from rq.timeouts import JobTimeoutException

from ..db_pool import HeldConnection
from ..extensions import db
from . import execution, queue, service

# The worker process's app, built on its first task (importing this module builds nothing).
_state: dict = {"app": None, "pid": None}


def worker_app() -> Flask:
    """The worker process's app, with a write-only Socket.IO emitter for JOB_UPDATE (no server runs here)."""
    app = _state["app"]
    if app is None:
        # Imported when the worker first needs its app: the factory imports every domain, and domain modules import
        # this one for their RQ entry points (co-editing's compaction), so a module-level import would loop.
        from .. import create_app

        app = create_app()  # pooled connections pinged only after they sat idle: see workspace/db_pool.py
        if app.config.get("REDIS_URL"):
            # Same channel as the web processes, or the events never reach their clients.
            # threading: left to auto-detect it would pick eventlet (installed) in this unpatched process.
            app.extensions["socketio_emitter"] = SocketIO(message_queue=app.config["REDIS_URL"],
                                                          channel=app.config["SOCKETIO_CHANNEL"],
                                                          async_mode="threading")
        with app.app_context():
            # The job loop is one thread: the claim and completion of every job run on one held connection.
            app.extensions["jobs_connection"] = HeldConnection(db.engine, app.config["DB_IDLE_PING_SECONDS"])
        _state.update(app=app, pid=os.getpid())
    elif _state["pid"] != os.getpid():
        with app.app_context():
            db.engine.dispose(close=False)
        _state["pid"] = os.getpid()
    return app


def _context():
    """The running app's context: the worker's own, or the caller's (the reaper, tests) when one is active."""
    return contextlib.nullcontext() if has_app_context() else worker_app().app_context()


def run_job(job_id: int) -> dict:
    """RQ's task: claim and run the job's next attempt (see execution.perform)."""
    with _context():
        return execution.perform(job_id, sleep=time.sleep)


def on_success(rq_job: RQJob, connection, result: dict, *args, **kwargs) -> None:
    """RQ's success callback: the row becomes succeeded with the result."""
    job_id = queue.row_id(rq_job.id)
    if job_id is not None:
        with _context():
            execution.succeeded(job_id, result)


def on_failure(rq_job: RQJob, connection, exc_type, exc_value, traceback, *args, **kwargs) -> None:
    """RQ's failure callback, for a raising attempt, a timeout and an abandoned job alike (RQ calls it before its
    Retry acts): the row becomes retrying, due when RQ's retry interval elapses, or failed."""
    job_id = queue.row_id(rq_job.id)
    if job_id is None:
        return
    # When RQ's scheduler will run the retry: its due time truncated to the second, as the scheduler keeps it.
    retry_at = datetime.fromtimestamp(int(time.time() + rq_job.get_retry_interval()), UTC) \
        if rq_job.should_retry else None
    with _context():
        message = None
        if isinstance(exc_value, AbandonedJobError):
            message = service.LOST_ERROR
        elif isinstance(getattr(exc_value, "__cause__", None), JobTimeoutException):
            message = f"The attempt ran longer than its time limit ({rq_job.timeout} s)."
        execution.failed(job_id, exc_value, retry_at, retries_left=rq_job.retries_left or 0, message=message)
