"""Embedded mode (no REDIS_URL): attempts run as background tasks of the one process, with the same states,
retries, backoff and events as under RQ. Uses the Socket.IO server's task and sleep functions, so it works under
threading, eventlet and gevent alike."""

from __future__ import annotations

import logging

from flask import Flask

from ..extensions import socketio

log = logging.getLogger(__name__)


def dispatch(app: Flask, job_id: int, attempt: int, delay: float = 0.0) -> None:
    socketio.start_background_task(_run, app, job_id, attempt, delay)


def _run(app: Flask, job_id: int, attempt: int, delay: float) -> None:
    from .execution import execute

    if delay > 0:
        socketio.sleep(delay)
    try:
        with app.app_context():
            execute(job_id, attempt, sleep=socketio.sleep)
    except Exception:  # a background task has no caller to raise to
        log.exception("embedded job %s attempt %s crashed", job_id, attempt)
