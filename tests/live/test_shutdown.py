"""Graceful shutdown of the Procfile's processes on SIGTERM (sent to the process group, as platforms do):

- a worker finishes the job in hand (RQ's warm shutdown), takes no new one, and leaves the queued ones for the next
  worker: nothing is lost;
- a web process stops accepting connections but completes a request already in flight.

(The web process's Socket.IO side — presence cleared, USER_LEAVE sent — is tested with the realtime feature.)
"""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest
import requests
import sqlalchemy as sa
from deploy_support import procfile, procfile_env, stop_group
from jobs_support import JobEvents
from teams import create_project

from processes import free_port, start, wait_http
from workspace.extensions import db
from workspace.models import Job, JobStatus

pytestmark = pytest.mark.live


def test_worker_finishes_its_job_on_sigterm_and_leaves_the_queue_intact(app, live_env, make_user, processes):
    from workspace.jobs import service

    user = make_user()
    project_id = create_project(app.test_client(), user)["id"]
    events = JobEvents(live_env["REDIS_URL"], live_env["SOCKETIO_CHANNEL"])
    env = procfile_env(live_env)
    try:
        worker = start(["sh", "-c", procfile()["worker"]], env, "shutdown-worker")
        processes.append(worker)
        with app.app_context():
            running_id = service.submit(user.id, project_id, "sleep", {"seconds": 2})[0].id
        events.wait(lambda e: e["job_id"] == running_id and e["status"] == "running")
        with app.app_context():
            waiting_id = service.submit(user.id, project_id, "echo", {"later": True})[0].id

        assert stop_group(worker, timeout=30), worker.output()[-3000:]  # exits by itself once the job is done

        with app.app_context():
            running, waiting = db.session.get(Job, running_id), db.session.get(Job, waiting_id)
            assert running.status == JobStatus.SUCCEEDED and running.attempts == 1
            assert waiting.status == JobStatus.QUEUED and waiting.attempts == 0  # not taken by a stopping worker
        assert "warm shut down requested" in worker.output().lower()

        successor = start(["sh", "-c", procfile()["worker"]], env, "shutdown-successor")
        processes.append(successor)
        events.wait(lambda e: e["job_id"] == waiting_id and e["status"] == "succeeded")
    finally:
        events.close()


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def test_web_completes_an_in_flight_request_on_sigterm(live_env, make_user, processes, database_url):
    """A request is held inside the app (its query waits on a table lock the test holds); SIGTERM arrives; the process
    stops accepting new connections, and the held request still gets its full answer once the lock is released."""
    user = make_user()
    port = free_port()
    web = start(["sh", "-c", procfile()["web"]], {**procfile_env(live_env), "PORT": str(port)}, "shutdown-web")
    processes.append(web)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", proc=web)

    engine = sa.create_engine(database_url)
    result: dict = {}

    def in_flight() -> None:
        try:
            result["response"] = requests.get(f"{base}/api/v1/auth/me", headers=user.headers, timeout=60)
        except requests.RequestException as exc:
            result["error"] = exc

    try:
        with engine.connect() as lock:
            lock.execute(sa.text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
            thread = threading.Thread(target=in_flight)
            thread.start()
            waiting = sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = to_regclass('users')")
            deadline = time.monotonic() + 20
            while lock.execute(waiting).scalar() == 0:  # the request is inside the app, blocked on the lock
                assert time.monotonic() < deadline, "the request never reached the database"
                time.sleep(0.05)

            web.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            while not refused(port):  # the listener closes; the request in flight keeps its connection
                assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
                time.sleep(0.1)
            assert "response" not in result and "error" not in result
            lock.rollback()  # release: the held request proceeds
        thread.join(30)
    finally:
        engine.dispose()

    assert "error" not in result, result.get("error")
    assert result["response"].status_code == 200
    assert result["response"].json()["id"] == user.id
    assert stop_group(web, timeout=30), web.output()[-3000:]
    assert "Shutting down: Master" in web.output()
