"""The jobs API in-process (real PostgreSQL and Redis, no worker): validation, roles, idempotency, Redis down,
and the service's recovery functions."""

from __future__ import annotations

import json
import threading
import uuid
import zlib
from datetime import timedelta

import pytest
import sqlalchemy as sa
from jobs_support import make_team, run
from rq import Queue, SimpleWorker
from rq.job import Job as RQJob
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from processes import free_port
from workspace.extensions import db
from workspace.jobs import execution, queue, service, tasks
from workspace.models import Job, JobStatus, utcnow


@pytest.fixture
def team(app, make_user):
    return make_team(app, make_user)


def rq_ids(app) -> list[str]:
    with app.app_context():
        return queue.rq_queue().job_ids


def work(app) -> None:
    """Run what is queued with a plain RQ SimpleWorker in this process (burst), as the deployment's worker would."""
    with app.app_context():
        rq = queue.rq_queue()
        SimpleWorker([rq], connection=rq.connection, serializer=JSONSerializer,
                     name=f"inproc-{uuid.uuid4().hex[:8]}").work(burst=True)


def no_sleep(seconds: float) -> None:
    """The handlers' sleep, for attempts run directly in a test."""


def row(app, job_id: int) -> Job:
    with app.app_context():
        job = db.session.get(Job, job_id)
        db.session.expunge(job)
        return job


@pytest.mark.parametrize(("job_type", "payload", "field"), [
    ("nope", {}, "type"),
    ("", {}, "type"),
    ("sleep", {}, "payload"),
    ("sleep", {"seconds": -1}, "payload"),
    ("sleep", {"seconds": 61}, "payload"),
    ("sleep", {"seconds": "soon"}, "payload"),
    ("sleep", {"seconds": 1, "extra": True}, "payload"),
    ("flaky", {"fail_times": "2"}, "payload"),
    ("flaky", {"fail_times": 11}, "payload"),
    ("export", {"everything": True}, "payload"),
    ("echo", [1, 2], "payload"),
    ("echo", None, "payload"),
])
def test_bad_submission_is_422_naming_the_field(app, client, team, job_type, payload, field):
    body = {"project_id": team.project_id, "type": job_type, "payload": payload}
    response = client.post("/api/v1/jobs/run", json=body, headers=team.owner.headers)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]["fields"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Job)) == 0


@pytest.mark.parametrize("body", [{"type": "echo"}, {"project_id": "1", "type": "echo"},
                                  {"project_id": 2**40, "type": "echo"}])
def test_malformed_body_is_422(client, team, body):
    assert client.post("/api/v1/jobs/run", json=body, headers=team.owner.headers).status_code == 422


def test_roles_decide_who_may_run_and_read(client, team):
    assert run(client, team.outsider, team.project_id, "echo", {}).status_code == 404
    assert run(client, team.owner, 999_999, "echo", {}).status_code == 404
    viewer = run(client, team.viewer, team.project_id, "echo", {})
    assert viewer.status_code == 403 and viewer.get_json()["error"]["code"] == "forbidden"
    assert client.post("/api/v1/jobs/run", json={"project_id": team.project_id, "type": "echo"}).status_code == 401

    accepted = run(client, team.collaborator, team.project_id, "echo", {"hello": "world"})
    assert accepted.status_code == 202
    job_id = accepted.get_json()["job_id"]
    assert accepted.get_json() == {"job_id": job_id, "status": "queued"}

    shown = client.get(f"/api/v1/jobs/{job_id}", headers=team.viewer.headers)
    assert shown.status_code == 200
    body = shown.get_json()
    assert {k: body[k] for k in ("job_id", "type", "status", "attempts", "max_attempts", "result", "error",
                                 "finished_at", "project_id")} == {
        "job_id": job_id, "type": "echo", "status": "queued", "attempts": 0, "max_attempts": 3, "result": None,
        "error": None, "finished_at": None, "project_id": team.project_id}
    assert body["created_at"].endswith("+00:00")
    hidden = client.get(f"/api/v1/jobs/{job_id}", headers=team.outsider.headers)
    assert hidden.status_code == 404 and hidden.get_json()["error"]["code"] == "job_not_found"
    assert client.get("/api/v1/jobs/424242", headers=team.owner.headers).status_code == 404
    assert client.get(f"/api/v1/jobs/{2**40}", headers=team.owner.headers).status_code == 404
    missing = client.get(f"/api/v1/jobs/{job_id}/artifact", headers=team.owner.headers)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "artifact_not_found"
    # An outsider learns nothing, not even that the job exists without an artifact.
    hidden = client.get(f"/api/v1/jobs/{job_id}/artifact", headers=team.outsider.headers)
    assert hidden.status_code == 404 and hidden.get_json()["error"]["code"] == "job_not_found"


def test_submit_queues_one_json_rq_job_with_rqs_retry_and_callbacks(app, client, team):
    job_id = run(client, team.owner, team.project_id, "sleep", {"seconds": 0.5}).get_json()["job_id"]
    with app.app_context():
        rq_id = queue.rq_job_id(job_id)
        assert rq_ids(app) == [rq_id]
        connection = queue.rq_queue().connection
        # JSON in Redis, never a pickle.
        assert json.loads(zlib.decompress(connection.hget(f"rq:job:{rq_id}", "data")))[0] == queue.TASK
        rq_job = RQJob.fetch(rq_id, connection=connection, serializer=JSONSerializer)
        assert rq_job.func_name == queue.TASK and list(rq_job.args) == [job_id]
        assert rq_job.timeout == 120
        # RQ's Retry: the 2 retries of 3 attempts, backoff drawn once per job (base 2 s: 1..2 s, then 2..4 s,
        # in whole seconds rounded up, + 1 s for the scheduler's truncation).
        assert rq_job.retries_left == 2 and len(rq_job.retry_intervals) == 2
        assert 2 <= rq_job.retry_intervals[0] <= 3 and 3 <= rq_job.retry_intervals[1] <= 5
        assert rq_job.success_callback is tasks.on_success and rq_job.failure_callback is tasks.on_failure


def test_project_job_list_is_paginated_newest_first(client, team):
    ids = [run(client, team.owner, team.project_id, "echo", {"n": n}).get_json()["job_id"] for n in range(3)]
    page = client.get(f"/api/v1/projects/{team.project_id}/jobs?per_page=2", headers=team.viewer.headers)
    assert page.status_code == 200
    body = page.get_json()
    assert (body["page"], body["per_page"], body["total"]) == (1, 2, 3)
    assert [item["job_id"] for item in body["items"]] == ids[::-1][:2]
    second = client.get(f"/api/v1/projects/{team.project_id}/jobs?page=2&per_page=2", headers=team.owner.headers)
    assert [item["job_id"] for item in second.get_json()["items"]] == ids[:1]
    assert client.get(f"/api/v1/projects/{team.project_id}/jobs", headers=team.outsider.headers).status_code == 404
    assert client.get(f"/api/v1/projects/{2**40}/jobs", headers=team.owner.headers).status_code == 404
    assert client.get(f"/api/v1/projects/{team.project_id}/jobs?per_page=101",
                      headers=team.owner.headers).status_code == 422


def test_idempotency_key_replays_the_original_and_never_runs_twice(app, client, team):
    first = run(client, team.owner, team.project_id, "echo", {"a": 1}, key="k-1")
    assert first.status_code == 202
    again = run(client, team.owner, team.project_id, "echo", {"a": 1}, key="k-1")
    assert again.status_code == 200 and again.get_json() == first.get_json()
    assert len(rq_ids(app)) == 1

    conflict = run(client, team.owner, team.project_id, "echo", {"a": 2}, key="k-1")
    assert conflict.status_code == 409
    assert conflict.get_json()["error"]["code"] == "idempotency_key_reused"

    # Keys are per user: another user's same key is another job.
    other = run(client, team.collaborator, team.project_id, "echo", {"a": 1}, key="k-1")
    assert other.status_code == 202 and other.get_json()["job_id"] != first.get_json()["job_id"]
    assert len(rq_ids(app)) == 2


def test_idempotency_keys_expire_after_24_hours(app, client, team):
    first = run(client, team.owner, team.project_id, "echo", {}, key="old").get_json()["job_id"]
    with app.app_context():
        db.session.execute(sa.update(Job).values(created_at=utcnow() - timedelta(hours=25)))
        db.session.commit()
    fresh = run(client, team.owner, team.project_id, "echo", {"different": True}, key="old")
    assert fresh.status_code == 202 and fresh.get_json()["job_id"] != first
    with app.app_context():
        db.session.execute(sa.update(Job).values(created_at=utcnow() - timedelta(hours=25)))
        db.session.commit()
        assert service.purge_expired_idempotency_keys() == 1
        assert service.purge_expired_idempotency_keys() == 0
        assert db.session.scalar(sa.select(sa.func.count()).where(Job.idempotency_key.is_not(None))) == 0


def test_concurrent_submissions_of_one_key_create_one_job(app, team):
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    responses = []

    def submit():
        client = app.test_client()
        barrier.wait(timeout=10)
        responses.append(run(client, team.owner, team.project_id, "echo", {"race": True}, key="race"))

    threads = [threading.Thread(target=submit) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * (threads_n - 1) + [202], [r.get_json() for r in responses]
    assert len({r.get_json()["job_id"] for r in responses}) == 1
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Job)) == 1
    assert len(rq_ids(app)) == 1


def test_redis_down_at_submit_is_503_and_leaves_no_row(make_app, app, client, team):
    down = make_app(RQ_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    refused = run(down.test_client(), team.owner, team.project_id, "echo", {}, key="while-down")
    assert refused.status_code == 503
    assert refused.get_json()["error"]["code"] == "queue_unavailable"
    assert refused.headers["Retry-After"] == "5"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Job)) == 0
    # Nothing was kept, so the client's retry with the same key is a fresh, accepted submission.
    assert run(client, team.owner, team.project_id, "echo", {}, key="while-down").status_code == 202


def test_a_redelivered_attempt_never_applies_twice(app, client, team):
    job_id = run(client, team.owner, team.project_id, "echo", {"x": 1}).get_json()["job_id"]
    with app.app_context():
        outcome = execution.perform(job_id, sleep=no_sleep)
        assert outcome == {"attempt": 1, "result": {"x": 1}}
        assert execution.perform(job_id, sleep=no_sleep) == {"skipped": True}  # running: not claimable
        execution.succeeded(job_id, outcome)
        execution.succeeded(job_id, outcome)  # a duplicate callback changes nothing
        assert execution.perform(job_id, sleep=no_sleep) == {"skipped": True}  # done
    job = row(app, job_id)
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 1, {"x": 1})


def test_rq_retries_failed_attempts_with_backoff_then_the_row_fails(make_app, team):
    """A real RQ worker (in-process): the failure callback writes the row, RQ's Retry schedules the next attempt."""
    app = make_app(JOB_BACKOFF_BASE_SECONDS=10)
    job_id = run(app.test_client(), team.owner, team.project_id, "flaky", {"fail_times": 5}).get_json()["job_id"]
    with app.app_context():
        rq = queue.rq_queue()
        rq_id = queue.rq_job_id(job_id)
        for attempt in (1, 2, 3):
            work(app)
            job = db.session.get(Job, job_id, populate_existing=True)
            assert job.attempts == attempt
            # Members read the failure's own message (a JobFailure), never a class name or traceback.
            assert job.error == f"flaky job failing on purpose (attempt {attempt} of the first 5)"
            if attempt < 3:
                assert job.status == JobStatus.RETRYING
                # Due when RQ's scheduler will run it: 5..10 s after the failure for the first retry (base 10, equal
                # jitter), 10..20 s for the second, plus at most 2 s of whole-second rounding.
                delay = (job.next_attempt_at - job.updated_at).total_seconds()
                assert (5 <= delay <= 12) if attempt == 1 else (10 <= delay <= 22)
                assert rq_id in ScheduledJobRegistry(queue=rq).get_job_ids()
                rq.scheduled_job_registry.remove(rq_id)  # what RQ's scheduler does when the retry is due
                rq.enqueue_job(RQJob.fetch(rq_id, connection=rq.connection, serializer=JSONSerializer))
        assert (job.status, job.finished_at is not None) == (JobStatus.FAILED, True)
        assert rq_id in rq.failed_job_registry.get_job_ids()

        assert service.requeue_failed_jobs(project_id=team.project_id) == 1
        job = db.session.get(Job, job_id, populate_existing=True)
        assert (job.status, job.attempts, job.finished_at) == (JobStatus.QUEUED, 0, None)
        assert rq.job_ids == [rq_id] and rq_id not in rq.failed_job_registry.get_job_ids()
        assert RQJob.fetch(rq_id, connection=rq.connection, serializer=JSONSerializer).retries_left == 2
        assert service.requeue_failed_jobs() == 0


def test_backoff_doubles_with_jitter_never_below_half():
    for attempt, nominal in ((1, 2.0), (2, 4.0), (3, 8.0)):
        delays = [service.backoff_delay(attempt, 2.0) for _ in range(200)]
        assert all(nominal / 2 <= d <= nominal for d in delays)
        assert len(set(delays)) > 1


def test_reaper_retries_a_job_whose_worker_died(app, client, team):
    job_id = run(client, team.owner, team.project_id, "sleep", {"seconds": 1}).get_json()["job_id"]
    with app.app_context():
        Queue(connection=queue.rq_queue().connection, name=app.config["RQ_QUEUE"]).empty()
        assert service.claim(job_id) is not None
        assert service.reap_lost_jobs() == 0  # the lease is fresh: its worker is presumed alive
        later = utcnow() + timedelta(seconds=app.config["JOB_LEASE_SECONDS"] + 1)
        assert service.reap_lost_jobs(now=later) == 1
        job = db.session.get(Job, job_id, populate_existing=True)
        assert (job.status, job.attempts) == (JobStatus.RETRYING, 1)
        assert "worker lost" in job.error
        # RQ never saw this attempt start, so the reaper retries it itself, at once (its worker vanished; the job
        # did not fail).
        assert queue.rq_queue().job_ids == [queue.rq_job_id(job_id)]
        # The stale attempt cannot finish the job any more.
        assert service.complete(job_id, 1, {"late": True}) is None


def test_reaper_fails_a_lost_job_on_its_last_attempt(app, client, team):
    job_id = run(client, team.owner, team.project_id, "echo", {}).get_json()["job_id"]
    with app.app_context():
        db.session.execute(sa.update(Job).values(max_attempts=1))
        db.session.commit()
        service.claim(job_id)
        later = utcnow() + timedelta(seconds=app.config["JOB_LEASE_SECONDS"] + 1)
        assert service.reap_lost_jobs(now=later) == 1
        job = db.session.get(Job, job_id, populate_existing=True)
        assert (job.status, job.attempts) == (JobStatus.FAILED, 1)


def test_reaper_redispatches_an_overdue_job_rq_lost(app, client, team):
    job_id = run(client, team.owner, team.project_id, "echo", {}).get_json()["job_id"]
    with app.app_context():
        later = utcnow() + timedelta(seconds=app.config["JOB_LEASE_SECONDS"] + 1)
        assert service.reap_lost_jobs(now=later) == 0  # still queued in RQ: left alone
        queue.rq_queue().empty()  # e.g. Redis restarted without persistence
        assert service.reap_lost_jobs(now=later) == 1
        assert queue.rq_queue().job_ids == [queue.rq_job_id(job_id)]


def test_reaper_moves_an_overdue_scheduled_retry_to_the_queue(make_app, team):
    """A retry stuck in RQ's scheduled registry (its scheduler died with its worker) is queued by the reaper."""
    app = make_app(JOB_BACKOFF_BASE_SECONDS=3)
    job_id = run(app.test_client(), team.owner, team.project_id, "flaky", {"fail_times": 1}).get_json()["job_id"]
    work(app)
    with app.app_context():
        assert db.session.get(Job, job_id).status == JobStatus.RETRYING
        rq_id = queue.rq_job_id(job_id)
        assert rq_id in ScheduledJobRegistry(queue=queue.rq_queue()).get_job_ids()
        later = utcnow() + timedelta(seconds=app.config["JOB_LEASE_SECONDS"] + 10)
        assert service.reap_lost_jobs(now=later) == 1
        assert rq_id not in ScheduledJobRegistry(queue=queue.rq_queue()).get_job_ids()
        assert rq_id in queue.rq_queue().job_ids


def test_worker_class_runs_jobs_in_process_and_reaps(app, client, team, monkeypatch):
    """The worker entry point's classes, run in this process (burst) against the test's app."""
    from workspace.jobs import tasks, worker

    monkeypatch.setitem(tasks._state, "app", app)
    monkeypatch.setitem(tasks._state, "pid", None)  # as if forked: the pool is dropped and rebuilt
    job_id = run(client, team.owner, team.project_id, "echo", {"in": "process"}).get_json()["job_id"]
    rq_worker = worker.build_worker("simple", name=f"inproc-{uuid.uuid4().hex[:8]}")
    assert isinstance(rq_worker, worker.ReapingSimpleWorker) and rq_worker.maintenance_interval == 10
    assert rq_worker.work(burst=True) is True
    job = row(app, job_id)
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, {"in": "process"})
