"""Jobs with real rq worker processes (python -m workspace.jobs.worker, as the Procfile runs it), real Redis and
PostgreSQL: retries with backoff, failure after the attempts, a worker killed mid-job, an export downloaded, and
JOB_UPDATE reaching a Socket.IO client of a live gunicorn."""

from __future__ import annotations

import hashlib
import io
import uuid
import zipfile
from datetime import datetime

import pytest
import socketio as socketio_client
from jobs_support import FAST_JOBS, WORKER, JobEvents, kill_tree, make_team, run

from processes import start, start_web
from workspace.jobs import queue

pytestmark = pytest.mark.live


@pytest.fixture
def events(live_env):
    listener = JobEvents(live_env["REDIS_URL"], live_env["SOCKETIO_CHANNEL"])
    yield listener
    listener.close()


@pytest.fixture
def worker_env(live_env):
    return {**live_env, **FAST_JOBS}


def start_worker(env, processes, name: str, worker_class: str = "simple"):
    # Worker names are global in Redis: a unique one per run (a killed worker's name stays registered a while).
    proc = start([*WORKER, "--worker-class", worker_class, "--name", f"{name}-{uuid.uuid4().hex[:8]}"], env, name)
    processes.append(proc)
    return proc


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_retries_back_off_then_succeed_or_fail_with_the_error(app, make_app, make_user, worker_env, processes,
                                                               events):
    team = make_team(app, make_user)
    # The backoff is drawn when the job is submitted (RQ's Retry intervals): submit with the workers' 1 s base.
    client = make_app(JOB_BACKOFF_BASE_SECONDS=1).test_client()
    start_worker(worker_env, processes, "retry-worker")
    flaky = run(client, team.owner, team.project_id, "flaky", {"fail_times": 2}).get_json()["job_id"]
    doomed = run(client, team.owner, team.project_id, "flaky", {"fail_times": 3}).get_json()["job_id"]

    # The row as each attempt ended: at attempt n's `retrying` event it holds attempt n's started_at and when
    # attempt n+1 is due (next_attempt_at; the retry cannot start within its backoff, so this read is not racy).
    ended = {}
    for number in (1, 2):
        events.wait(lambda e, n=number: e["job_id"] == flaky and e["status"] == "retrying" and e["attempts"] == n)
        ended[number] = client.get(f"/api/v1/jobs/{flaky}", headers=team.owner.headers).get_json()
    events.wait(lambda e: e["job_id"] == flaky and e["status"] == "succeeded", timeout=15)
    ended[3] = client.get(f"/api/v1/jobs/{flaky}", headers=team.owner.headers).get_json()
    events.wait(lambda e: e["job_id"] == doomed and e["status"] == "failed", timeout=15)

    assert events.statuses(flaky) == ["queued", "running", "retrying", "running", "retrying", "running", "succeeded"]
    assert events.statuses(doomed)[-2:] == ["running", "failed"]
    done = client.get(f"/api/v1/jobs/{flaky}", headers=team.owner.headers).get_json()
    assert (done["status"], done["attempts"], done["result"]) == ("succeeded", 3, {"succeeded_on_attempt": 3})
    failed = client.get(f"/api/v1/jobs/{doomed}", headers=team.owner.headers).get_json()
    assert (failed["status"], failed["attempts"]) == ("failed", 3)
    assert failed["error"] == "flaky job failing on purpose (attempt 3 of the first 3)"

    # Backoff (base 1 s, doubling, equal jitter): attempt n+1 was due 0.5..1 × 2^(n-1) s after attempt n started
    # (its failure is immediate), plus at most 2 s because RQ's scheduler keeps whole seconds, and never started
    # before it was due.
    for number, nominal in ((2, 1.0), (3, 2.0)):
        started_before = when(ended[number - 1]["started_at"])
        due = when(ended[number - 1]["next_attempt_at"])
        started = when(ended[number]["started_at"])
        assert nominal / 2 <= (due - started_before).total_seconds() <= nominal + 2.5, (number, ended)
        assert due <= started, (number, ended)
        assert (started - due).total_seconds() < 2.5, (number, ended)


def test_a_worker_killed_mid_job_loses_nothing(app, client, make_user, worker_env, processes, events):
    team = make_team(app, make_user)
    doomed_worker = start_worker(worker_env, processes, "doomed-worker", worker_class="fork")
    job_id = run(client, team.owner, team.project_id, "sleep", {"seconds": 3}).get_json()["job_id"]
    events.wait(lambda e: e["job_id"] == job_id and e["status"] == "running")
    kill_tree(doomed_worker)  # SIGKILL to the worker and its work horse: no cleanup, no failure handling

    start_worker(worker_env, processes, "rescue-worker")
    retried = events.wait(lambda e: e["job_id"] == job_id and e["status"] == "retrying", timeout=20)
    assert retried["attempts"] == 1
    events.wait(lambda e: e["job_id"] == job_id and e["status"] == "succeeded", timeout=20)
    job = client.get(f"/api/v1/jobs/{job_id}", headers=team.owner.headers).get_json()
    assert (job["status"], job["attempts"], job["result"]) == ("succeeded", 2, {"slept": 3.0})
    assert "worker lost" in job["error"]


def test_export_runs_on_a_worker_and_downloads_with_its_sha256(app, client, make_user, worker_env, processes,
                                                               events):
    files = {f"docs/page-{n:02}.md": f"# page {n}\n" + "text " * n for n in range(25)}
    team = make_team(app, make_user, files=files)
    start_worker(worker_env, processes, "export-worker", worker_class="fork")
    job_id = run(client, team.collaborator, team.project_id, "export", {}).get_json()["job_id"]
    events.wait(lambda e: e["job_id"] == job_id and e["status"] == "succeeded")
    progress = [e["progress"] for e in events.seen if e["job_id"] == job_id and "progress" in e]
    assert progress[0] == {"done": 0, "total": 25} and progress[-1] == {"done": 25, "total": 25}
    assert [p["done"] for p in progress] == sorted(p["done"] for p in progress)

    job = client.get(f"/api/v1/jobs/{job_id}", headers=team.viewer.headers).get_json()
    download = client.get(f"/api/v1/jobs/{job_id}/artifact", headers=team.viewer.headers)
    assert download.status_code == 200 and download.mimetype == "application/zip"
    digest = hashlib.sha256(download.data).hexdigest()
    assert job["result"] == {"file_count": 25, "bytes": len(download.data), "sha256": digest}
    assert download.headers["X-Content-SHA256"] == digest
    with zipfile.ZipFile(io.BytesIO(download.data)) as archive:
        assert {name: archive.read(name).decode() for name in archive.namelist()} == files
    assert client.get(f"/api/v1/jobs/{job_id}/artifact", headers=team.outsider.headers).status_code == 404


def test_job_update_reaches_a_socket_client_in_the_project_room(app, client, make_user, worker_env, processes):
    team = make_team(app, make_user)
    web, base = start_web(worker_env)
    processes.append(web)
    start_worker(worker_env, processes, "socket-worker")
    sio = socketio_client.SimpleClient()
    sio.connect(base, auth={"token": team.viewer.access}, transports=["websocket"], wait_timeout=10)
    try:
        ack = sio.call("join", {"project_id": team.project_id}, timeout=10)
        assert ack["ok"] is True, ack
        job_id = run(client, team.owner, team.project_id, "echo", {"hi": 1}).get_json()["job_id"]
        statuses = []
        while "succeeded" not in statuses:
            event, data = sio.receive(timeout=15)
            if event == "JOB_UPDATE" and data["job_id"] == job_id:
                assert data["project_id"] == team.project_id and isinstance(data["seq"], int)
                statuses.append(data["status"])
        assert statuses == ["queued", "running", "succeeded"]
        assert data["attempts"] == 1
    finally:
        sio.disconnect()


def test_rq_job_ids_are_per_queue_and_row(app):
    with app.app_context():
        assert queue.rq_job_id(7).endswith("-7") and queue.row_id(queue.rq_job_id(7)) == 7
        assert ":" not in queue.rq_job_id(7)  # RQ's registries join job and execution ids with ":"
        assert queue.row_id("someone-elses-job") is None
