"""Jobs against abuse (issue 10): RQ jobs carry JSON (a pickle in Redis is refused, never run), members read clean
errors (details only in the log), the per-user in-flight quota, exports in bounded memory, and a deleted project
takes its jobs and artifacts with it."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import tracemalloc
import uuid
import zipfile
import zlib

import pytest
import sqlalchemy as sa
from jobs_support import make_team, run
from rq import SimpleWorker
from rq.job import Job as RQJob
from rq.serializers import JSONSerializer

from workspace.extensions import db
from workspace.jobs import execution, export, queue, tasks, types, worker
from workspace.models import Job, JobArtifact, JobArtifactChunk, JobStatus, ProjectFile


def work(app) -> None:
    """Run what is queued with a SimpleWorker in this process, configured as `python -m workspace.jobs.worker`."""
    with app.app_context():
        rq = queue.rq_queue()
        SimpleWorker([rq], connection=rq.connection, serializer=JSONSerializer,
                     name=f"inproc-{uuid.uuid4().hex[:8]}").work(burst=True)


class Payload:
    """What an attacker with access to Redis would plant: unpickling it creates a file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_job_in_redis_is_refused_not_executed(app, tmp_path, monkeypatch):
    marker = tmp_path / "unpickled"
    with app.app_context():
        rq = queue.rq_queue()
        # A job hash as RQ writes it, but its data a pickle, pushed onto our queue.
        rq_id = queue.rq_job_id(999_999)
        data = zlib.compress(pickle.dumps(("os.getpid", None, (Payload(str(marker)),), {})))
        rq.connection.hset(f"rq:job:{rq_id}", mapping={"data": data, "origin": rq.name, "status": "queued",
                                                       "created_at": "2026-01-01T00:00:00.000000Z",
                                                       "description": "planted"})
        rq.connection.rpush(rq.key, rq_id)
    # The deployment's worker (python -m workspace.jobs.worker), run in this process against this test's app.
    monkeypatch.setitem(tasks._state, "app", app)
    monkeypatch.setitem(tasks._state, "pid", os.getpid())
    assert worker.build_worker("simple", name=f"inproc-{uuid.uuid4().hex[:8]}").work(burst=True)
    assert not marker.exists()
    with app.app_context():
        rq = queue.rq_queue()
        assert rq_id in rq.failed_job_registry.get_job_ids()
        assert RQJob.fetch(rq_id, connection=rq.connection, serializer=JSONSerializer).get_status() == "failed"


def test_members_read_a_clean_error_and_the_log_keeps_the_detail(app, client, make_user, monkeypatch, caplog):
    def broken(attempt):
        raise KeyError("internal detail: table secret_stuff")

    monkeypatch.setitem(types.JOB_TYPES, "echo", types.JobType("echo", types.AnyPayload, broken, 60))
    team = make_team(app, make_user)
    job_id = run(client, team.owner, team.project_id, "echo", {}).get_json()["job_id"]
    with caplog.at_level(logging.WARNING, logger="workspace.jobs.execution"):
        work(app)
    job = client.get(f"/api/v1/jobs/{job_id}", headers=team.viewer.headers).get_json()
    assert (job["status"], job["attempts"]) == ("retrying", 1)
    assert job["error"] == execution.INTERNAL_ERROR
    logged = [r for r in caplog.records if r.name == "workspace.jobs.execution"]
    assert logged and logged[-1].exc_info is not None
    assert "secret_stuff" in str(logged[-1].exc_info[1])


def test_jobs_in_flight_per_user_are_capped_with_a_429(make_app, make_user):
    app = make_app(JOB_MAX_IN_FLIGHT_PER_USER=2)
    client = app.test_client()
    team = make_team(app, make_user)
    first = run(client, team.owner, team.project_id, "echo", {"n": 1}, key="one").get_json()["job_id"]
    assert run(client, team.owner, team.project_id, "echo", {"n": 2}).status_code == 202
    refused = run(client, team.owner, team.project_id, "echo", {"n": 3})
    assert refused.status_code == 429
    assert refused.get_json() == {"error": {
        "code": "job_quota_exceeded", "message": refused.get_json()["error"]["message"],
        "details": {"limit": 2, "in_flight": 2}}}
    assert "limit is 2" in refused.get_json()["error"]["message"]
    # A replay of a key is not a new job; another user has their own quota.
    assert run(client, team.owner, team.project_id, "echo", {"n": 1}, key="one").status_code == 200
    assert run(client, team.collaborator, team.project_id, "echo", {}).status_code == 202
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).where(Job.user_id == team.owner.id)) == 2
        # A finished job frees its slot.
        execution.succeeded(first, execution.perform(first, sleep=lambda s: None))
    assert run(client, team.owner, team.project_id, "echo", {"n": 4}).status_code == 202


def test_a_large_export_is_built_and_served_in_bounded_memory(app, client, make_user):
    # 24 files of 512 KiB of hex digits (which deflate to about 55 %): a ~7 MiB archive, stored in chunks.
    files = {f"data/blob-{n:02}.txt": os.urandom(384 * 1024).hex()[: 512 * 1024] for n in range(24)}
    team = make_team(app, make_user, files=files)
    job_id = run(client, team.owner, team.project_id, "export", {}).get_json()["job_id"]
    with app.app_context():
        db.session.remove()
        tracemalloc.start()
        try:
            outcome = execution.perform(job_id, sleep=lambda s: None)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        execution.succeeded(job_id, outcome)
        size = outcome["result"]["bytes"]
        assert size > 6 * 1024 * 1024
        # The archive never sat in memory whole (a BytesIO build peaks above the archive's size).
        assert peak < size / 2, (peak, size)
        assert db.session.scalar(sa.select(sa.func.count()).where(JobArtifactChunk.job_id == job_id)) == \
            -(-size // export.ARTIFACT_CHUNK_BYTES)

    download = client.get(f"/api/v1/jobs/{job_id}/artifact", headers=team.viewer.headers)
    assert download.status_code == 200 and download.is_streamed
    assert int(download.headers["Content-Length"]) == size
    body = download.get_data()
    assert hashlib.sha256(body).hexdigest() == outcome["result"]["sha256"] == download.headers["X-Content-SHA256"]
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.read("data/blob-07.txt").decode() == files["data/blob-07.txt"]


def test_deleting_a_project_deletes_its_jobs_and_artifacts(app, client, make_user):
    team = make_team(app, make_user, files={"a.txt": "a"})
    job_id = run(client, team.owner, team.project_id, "export", {}).get_json()["job_id"]
    with app.app_context():
        execution.succeeded(job_id, execution.perform(job_id, sleep=lambda s: None))
        assert db.session.get(Job, job_id).status == JobStatus.SUCCEEDED
    assert client.delete(f"/api/v1/projects/{team.project_id}", headers=team.owner.headers).status_code == 204
    with app.app_context():
        db.session.expire_all()
        for model in (Job, JobArtifact, JobArtifactChunk, ProjectFile):
            assert db.session.scalar(sa.select(sa.func.count()).select_from(model)) == 0, model
    assert client.get(f"/api/v1/jobs/{job_id}", headers=team.owner.headers).status_code == 404


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.RUNNING])
def test_an_artifact_is_served_only_for_a_succeeded_job(app, client, make_user, status):
    team = make_team(app, make_user, files={"a.txt": "a"})
    job_id = run(client, team.owner, team.project_id, "export", {}).get_json()["job_id"]
    with app.app_context():
        execution.perform(job_id, sleep=lambda s: None)  # the artifact is stored, the job still running
        db.session.execute(sa.update(Job).values(status=status))
        db.session.commit()
    missing = client.get(f"/api/v1/jobs/{job_id}/artifact", headers=team.owner.headers)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "artifact_not_found"


def test_an_attempt_over_its_time_limit_fails_with_a_clean_message(app, client, make_user, monkeypatch):
    """RQ's timeout interrupts the handler; the row says so in words, not with RQ's exception."""
    monkeypatch.setitem(types.JOB_TYPES, "sleep", types.JobType("sleep", types.SleepPayload, types.run_sleep, 1))
    team = make_team(app, make_user)
    job_id = run(client, team.owner, team.project_id, "sleep", {"seconds": 5}).get_json()["job_id"]
    work(app)
    job = client.get(f"/api/v1/jobs/{job_id}", headers=team.owner.headers).get_json()
    assert (job["status"], job["attempts"]) == ("retrying", 1)
    assert job["error"] == "The attempt ran longer than its time limit (1 s)."
