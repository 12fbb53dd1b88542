"""The worker's lean path (real PostgreSQL and Redis, in-process): claim and completion as plain SQL on one held
autocommit connection, the job metric riding in JOB_UPDATE's round trip, and the RQ writes the worker drops."""

from __future__ import annotations

import os
import threading
import uuid
from datetime import UTC, timedelta

import psycopg2
import pytest
import sqlalchemy as sa
from jobs_support import JobEvents, make_team
from rq import SimpleWorker
from rq.job import JobStatus as RQStatus
from rq.serializers import JSONSerializer
from rq.worker import BaseWorker

from workspace import events
from workspace.db_pool import HeldConnection, fetchone_autocommit
from workspace.extensions import db, redis_store
from workspace.jobs import queue, service, tasks, worker
from workspace.models import Job, JobStatus, utcnow
from workspace.observability import metrics
from workspace.realtime import broadcast, ordered


@pytest.fixture
def team(app, make_user):
    return make_team(app, make_user)


def _terminate(database_url: str, pid: int) -> None:
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def test_a_held_connection_is_one_backend_replaced_when_postgresql_drops_it(app, database_url):
    with app.app_context():
        held = HeldConnection(db.engine, idle_seconds=3600)  # never idle long enough to be pinged
        first = held.fetchone("SELECT pg_backend_pid()", {})[0]
        assert held.fetchone("SELECT pg_backend_pid()", {})[0] == first
        _terminate(database_url, first)
        with pytest.raises(psycopg2.OperationalError):
            held.fetchone("SELECT 1", {})
        second = held.fetchone("SELECT pg_backend_pid()", {})[0]  # the closed connection was let go
        assert second != first
        held.idle_seconds = 0.0  # from now on pinged before every use: a dropped one is replaced unseen
        _terminate(database_url, second)
        assert held.fetchone("SELECT pg_backend_pid()", {})[0] not in (first, second)
        held.close()


def test_a_held_connection_autocommits_and_a_forked_child_opens_its_own(app):
    with app.app_context():
        held = HeldConnection(db.engine, idle_seconds=3600)
        parent = held.fetchone("SELECT pg_backend_pid()", {})[0]
        assert held.fetchone("SELECT now() = statement_timestamp()", {})[0] is True  # no transaction open
        inherited = held._fairy.driver_connection
        # As a forked child sees it: the socket is its parent's, and the child's pool was dropped (tasks.worker_app).
        held._pid = -1
        db.engine.dispose(close=False)
        assert held.fetchone("SELECT pg_backend_pid()", {})[0] != parent
        assert inherited.closed == 0  # the parent's connection left alone
        held.close()
        inherited.close()


def test_a_pooled_autocommit_statement_leaves_the_connection_as_it_came(app, team):
    with app.app_context():
        fetchone_autocommit(db.engine, "UPDATE projects SET description = %(d)s WHERE id = %(id)s RETURNING id",
                            {"d": "plain", "id": team.project_id})
        # Committed at once (another connection sees it), and the pooled connection is back out of autocommit.
        assert db.session.scalar(sa.text("SELECT description FROM projects WHERE id = :id"),
                                 {"id": team.project_id}) == "plain"
        fairy = db.engine.raw_connection()
        try:
            assert fairy.driver_connection.autocommit is False
        finally:
            fairy.close()
        db.session.rollback()


@pytest.mark.parametrize("held", [False, True], ids=["pooled", "held"])
def test_claim_and_complete_are_compare_and_sets_returning_the_committed_row(app, team, held):
    events = JobEvents(app.config["REDIS_URL"], app.config["SOCKETIO_CHANNEL"])
    try:
        with app.app_context():
            if held:
                app.extensions["jobs_connection"] = HeldConnection(db.engine, 5.0)
            job_id = service.submit(team.owner.id, team.project_id, "echo", {"a": [1, "é"]})[0].id
            job = service.claim(job_id)
            assert isinstance(job, Job) and job.status is JobStatus.RUNNING and job.attempts == 1
            assert job.payload == {"a": [1, "é"]} and job.project_id == team.project_id
            assert job.started_at.tzinfo == UTC and job.lease_expires_at > job.started_at
            assert service.claim(job_id) is None  # a duplicate delivery
            assert service.complete(job_id, 2, {"late": True}) is None  # not this attempt
            done = service.complete(job_id, 1, {"out": None})
            assert (done.status, done.result, done.lease_expires_at) == (JobStatus.SUCCEEDED, {"out": None}, None)
            assert service.complete(job_id, 1, {"twice": True}) is None
            stored = db.session.get(Job, job_id)
            assert (stored.status, stored.result, stored.finished_at) == (JobStatus.SUCCEEDED, {"out": None},
                                                                          done.finished_at)
            app.extensions.pop("jobs_connection", None)
        events.wait(lambda e: e["job_id"] == job_id and e["status"] == "succeeded")
        assert events.statuses(job_id) == ["queued", "running", "succeeded"]
        seqs = [e["seq"] for e in events.seen if e["job_id"] == job_id]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3
    finally:
        events.close()


def test_only_the_claim_commits_without_waiting_for_its_wal_flush(app, team):
    with app.app_context():
        held = app.extensions["jobs_connection"] = HeldConnection(db.engine, 5.0)
        try:
            job_id = service.submit(team.owner.id, team.project_id, "echo", {})[0].id
            # The claim's first statement switches the WAL flush off for its own transaction, and it does so on the
            # held autocommit connection (a multi-statement query is one transaction).
            switch = service._CLAIM_SQL.split(";")[0]
            assert switch == "SET LOCAL synchronous_commit = off"
            assert held.fetchone(f"{switch}; SHOW synchronous_commit", {}) == ("off",)
            assert service.claim(job_id) is not None
            connection = held._fairy.driver_connection
            # SET LOCAL outside a transaction block is ignored with a WARNING: the claim's SET and UPDATE ran as
            # one transaction, and the setting ended with it (the completion on this connection is synchronous).
            assert connection.notices == []
            assert held.fetchone("SHOW synchronous_commit", {}) == ("on",)
            assert service.complete(job_id, 1, {}) is not None
            assert "synchronous_commit" not in service._COMPLETE_SQL
        finally:
            app.extensions.pop("jobs_connection").close()


def test_a_claim_lost_in_a_postgresql_crash_runs_the_job_again(app, team, monkeypatch):
    """What a crash can do to an asynchronously committed claim: the row reads as before it (queued), the attempt's
    completion finds nothing to complete, and the reaper queues the job again; its next run succeeds."""
    with app.app_context():
        job_id = service.submit(team.owner.id, team.project_id, "echo", {"again": True})[0].id
        real_complete = service.complete

        def complete_after_crash(job_id_, attempt, result):
            db.session.execute(sa.update(Job).where(Job.id == job_id_).values(
                status=JobStatus.QUEUED, attempts=0, started_at=None, lease_expires_at=None))  # the claim undone
            db.session.commit()
            return real_complete(job_id_, attempt, result)

        monkeypatch.setattr(service, "complete", complete_after_crash)
        rq = queue.rq_queue()
        SimpleWorker([rq], connection=rq.connection, serializer=JSONSerializer,
                     name=f"inproc-{uuid.uuid4().hex[:8]}").work(burst=True)
        monkeypatch.setattr(service, "complete", real_complete)
        job = db.session.get(Job, job_id, populate_existing=True)
        assert (job.status, job.attempts, job.result) == (JobStatus.QUEUED, 0, None)  # the outcome was dropped
        assert rq.job_ids == []  # RQ saw the attempt succeed
        later = utcnow() + timedelta(seconds=app.config["JOB_LEASE_SECONDS"] + 1)
        assert service.reap_lost_jobs(now=later) == 1
        assert rq.job_ids == [queue.rq_job_id(job_id)]
        SimpleWorker([rq], connection=rq.connection, serializer=JSONSerializer,
                     name=f"inproc-{uuid.uuid4().hex[:8]}").work(burst=True)
        job = db.session.get(Job, job_id, populate_existing=True)
        assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 1, {"again": True})


def _durations(app) -> dict:
    with app.app_context():
        return redis_store.client.hgetall(redis_store.key("metrics", "job_duration"))


def test_a_job_metric_rides_in_its_job_updates_round_trip(app, team, monkeypatch):
    with app.app_context():
        job_id = service.submit(team.owner.id, team.project_id, "echo", {})[0].id
        service.claim(job_id)
        round_trips = []
        real_execute = type(redis_store.client.pipeline()).execute
        monkeypatch.setattr(type(redis_store.client.pipeline()), "execute",
                            lambda self, *a, **k: round_trips.append(len(self)) or real_execute(self, *a, **k))
        service.complete(job_id, 1, {})
        # One pipeline: the emit script and the metric's three writes.
        assert round_trips == [4]
    assert _durations(app)["echo|succeeded|count"] == "1"


def test_queued_best_effort_writes_go_out_when_the_batch_ends_or_with_the_script_reloaded(app):
    with app.app_context():
        with redis_store.batch():
            metrics.job_finished("echo", "failed", 0.5)
            assert "echo|failed|count" not in _durations(app)  # waiting for a round trip to ride
            with redis_store.batch():  # nested: the same batch
                metrics.job_finished("echo", "failed", 0.5)
        assert _durations(app)["echo|failed|count"] == "2"  # nothing took them: written when the batch ended
        broadcast.emit_to_project(5, "JOB_UPDATE", {"job_id": 1, "status": "queued", "attempts": 0})
        script = ordered._scripts[redis_store.client]
        sha = script.sha
        script.sha = "0" * 40  # as if Redis lost the script (a restart, SCRIPT FLUSH)
        try:
            with redis_store.batch():
                metrics.job_finished("echo", "failed", 0.5)
                sent = broadcast.emit_to_project(5, "JOB_UPDATE", {"job_id": 1, "status": "failed", "attempts": 1})
        finally:
            script.sha = sha
        assert sent["seq"] == 2  # the script was loaded and run once
        assert ordered.current_seq(5) == 2
    assert _durations(app)["echo|failed|count"] == "3"


def test_best_effort_writes_outside_an_announcement_are_written_at_once(app):
    with app.app_context():
        assert redis_store.later(lambda pipe: None) is False
        metrics.job_finished("echo", "retrying", 1.0)
    assert _durations(app)["echo|retrying|count"] == "1"


@pytest.fixture
def lean(app, monkeypatch):
    """A worker of the Procfile's class on the test's queue, and the RQ base methods it called."""
    monkeypatch.setitem(tasks._state, "app", app)
    monkeypatch.setitem(tasks._state, "pid", None)
    calls = []
    for name in ("heartbeat", "set_state", "check_for_suspension", "handle_execution_ended"):
        monkeypatch.setattr(BaseWorker, name, lambda self, *args, _name=name, **kwargs: calls.append(_name))
    rq_worker = worker.build_worker("simple", name=f"inproc-{uuid.uuid4().hex[:8]}")
    return rq_worker, calls


def test_the_worker_drops_repeated_heartbeats_state_writes_and_suspension_checks(lean):
    rq_worker, calls = lean
    rq_worker.heartbeat()
    rq_worker.heartbeat()  # within HEARTBEAT_EVERY: the TTL set a moment ago still stands
    rq_worker.heartbeat(pipeline=object())  # inside RQ's pipelines: always
    rq_worker.heartbeat(30)  # an explicit TTL: always
    assert calls == ["heartbeat", "heartbeat", "heartbeat"]
    calls.clear()
    rq_worker._state = "idle"
    rq_worker.set_state("idle")  # the key holds it already
    rq_worker.set_state("busy")
    rq_worker.set_state("idle", pipeline=object())
    assert calls == ["set_state", "set_state"]
    calls.clear()
    rq_worker.check_for_suspension(True)
    rq_worker.check_for_suspension(True)
    assert calls == ["check_for_suspension"]
    rq_worker._suspension_checked_at = rq_worker._beat_at = float("-inf")  # a second later
    rq_worker.check_for_suspension(True)
    rq_worker.heartbeat()
    assert calls == ["check_for_suspension", "check_for_suspension", "heartbeat"]


def test_a_succeeded_jobs_end_is_saved_by_rqs_success_pipeline_a_failed_ones_at_once(lean):
    rq_worker, calls = lean
    job = type("FakeJob", (), {})()
    job.get_status = lambda refresh=True: RQStatus.STARTED
    rq_worker.handle_execution_ended(job, None, 60)
    assert calls == [] and job.ended_at == job.last_heartbeat and job.ended_at.tzinfo is not None
    job.get_status = lambda refresh=True: RQStatus.FAILED
    rq_worker.handle_execution_ended(job, None, 60)
    assert calls == ["handle_execution_ended"]


def test_the_worker_app_holds_one_connection_for_the_job_loop(make_app, monkeypatch):
    import workspace

    monkeypatch.setattr(workspace, "create_app", lambda: make_app(DB_IDLE_PING_SECONDS=7.0))
    monkeypatch.setitem(tasks._state, "app", None)
    built = tasks.worker_app()
    held = built.extensions["jobs_connection"]
    assert isinstance(held, HeldConnection) and held.idle_seconds == 7.0


def test_a_failing_emit_is_logged_and_its_riding_metric_still_written(app, caplog):
    with app.app_context():
        redis_store.client.hset(ordered.seq_key(6), "not", "a counter")  # INCR fails inside the script
        with redis_store.batch():
            metrics.job_finished("echo", "succeeded", 0.1)
            sent = broadcast.emit_to_project(6, "JOB_UPDATE", {"job_id": 1, "status": "succeeded", "attempts": 1})
    assert sent["seq"] is None and "not sent, Redis unavailable" in caplog.text
    assert _durations(app)["echo|succeeded|count"] == "1"


def test_the_announcer_sends_job_changes_in_order_from_its_own_thread(app, monkeypatch):
    sent = []
    monkeypatch.setattr(events, "announce", lambda event, *, job: sent.append((job, threading.current_thread())))
    announcer = worker.Announcer(app)
    jobs = [object() for _ in range(50)]
    with app.app_context():
        app.extensions["jobs_announcer"] = announcer
        try:
            for job in jobs:
                service.announce(job)
        finally:
            del app.extensions["jobs_announcer"]
    announcer.close()  # sends what is pending before it returns
    assert [job for job, _ in sent] == jobs
    assert {thread for _, thread in sent} == {announcer._thread} != {threading.current_thread()}
    assert announcer.take(object()) is False  # closed: the caller announces itself


def test_a_forked_child_announces_itself(app):
    announcer = worker.Announcer(app)
    try:
        announcer.pid = -1  # as a work horse sees it: the thread is its parent's
        assert announcer.take(object()) is False
    finally:
        announcer.pid = os.getpid()
        announcer.close()


def test_a_failed_announcement_is_logged_and_the_next_ones_still_sent(app, monkeypatch, caplog):
    sent = []

    def announce(event, *, job):
        if job == "bad":
            raise RuntimeError("subscriber broke")
        sent.append(job)

    monkeypatch.setattr(events, "announce", announce)
    announcer = worker.Announcer(app)
    for job in ("a", "bad", "b"):
        assert announcer.take(job)
    announcer.close()
    assert sent == ["a", "b"] and "announcement failed" in caplog.text


def test_the_simple_worker_has_sent_every_job_update_when_it_returns(app, team, monkeypatch):
    monkeypatch.setitem(tasks._state, "app", app)
    monkeypatch.setitem(tasks._state, "pid", None)
    sent = []
    real_announce = events.announce
    monkeypatch.setattr(events, "announce", lambda event, **kwargs: sent.append(
        (kwargs["job"].id, str(kwargs["job"].status.value), threading.current_thread().name))
        or real_announce(event, **kwargs))
    with app.app_context():
        ids = [service.submit(team.owner.id, team.project_id, "echo", {"n": n})[0].id for n in range(5)]
    rq_worker = worker.build_worker("simple", name=f"inproc-{uuid.uuid4().hex[:8]}")
    assert rq_worker.work(burst=True) is True
    assert "jobs_announcer" not in app.extensions
    for job_id in ids:
        assert [(status, thread) for id_, status, thread in sent if id_ == job_id] == [
            ("queued", threading.current_thread().name), ("running", "job-announcer"),
            ("succeeded", "job-announcer")]


def test_a_rows_job_succeeds_in_rq_without_reading_its_dependents_other_jobs_as_rq_does(app, team, monkeypatch):
    from rq import Queue
    from rq.results import Result

    monkeypatch.setitem(tasks._state, "app", app)
    monkeypatch.setitem(tasks._state, "pid", None)
    read = []
    real = Queue.enqueue_dependents
    monkeypatch.setattr(Queue, "enqueue_dependents", lambda self, job, *a, **k: read.append(job.id) or real(
        self, job, *a, **k))
    with app.app_context():
        job_id = service.submit(team.owner.id, team.project_id, "echo", {"n": 1})[0].id
        rq = queue.rq_queue()
        ours = rq.fetch_job(queue.rq_job_id(job_id))
        other = rq.enqueue("builtins.dict", {"plain": "rq"}, result_ttl=60)
        name = f"inproc-{uuid.uuid4().hex[:8]}"
        rq_worker = worker.build_worker("simple", name=name)
        assert rq_worker.work(burst=True) is True
        assert read == [other.id]  # only the job that is not a row's
        # The other job recorded as RQ records a success.
        other = rq.fetch_job(other.id)
        assert other.get_status() == RQStatus.FINISHED and other.ended_at is not None
        assert other.id in rq.finished_job_registry.get_job_ids()
        assert Result.fetch_latest(other, serializer=JSONSerializer).type == Result.Type.SUCCESSFUL
        assert 0 < other.connection.ttl(other.key) <= 60  # its result TTL
        # The row's job (result TTL 0: the row holds the outcome) is gone from Redis, leaving nothing behind.
        assert rq.fetch_job(ours.id) is None
        assert not rq.connection.exists(ours.key, ours.dependents_key, ours.dependencies_key,
                                        ours.execution_registry.key, Result.get_key(ours.id))
        for registry in (rq.started_job_registry, rq.finished_job_registry, rq.failed_job_registry):
            assert ours.id not in registry.get_job_ids()
        assert rq.started_job_registry.get_job_and_execution_ids() == []
        assert not list(rq.connection.scan_iter(match=f"rq:execution:{ours.id}:*"))
        # Counted as RQ counts a success, and idle again.
        stored = rq.connection.hgetall(f"rq:worker:{name}")
        assert stored[b"successful_job_count"] == b"2" and stored[b"state"] == b"idle"
        assert db.session.get(Job, job_id).status == JobStatus.SUCCEEDED


def test_a_job_is_prepared_in_one_round_trip_with_rqs_writes(app, monkeypatch):
    from redis.client import Pipeline
    from rq import Queue

    monkeypatch.setitem(tasks._state, "app", app)
    monkeypatch.setitem(tasks._state, "pid", None)
    with app.app_context():
        rq = queue.rq_queue()
    plain = Queue(rq.name, connection=rq.connection, serializer=JSONSerializer)
    job = plain.enqueue("jobs_support.rq_snapshot", result_ttl=60)
    rq.connection.expire(job.key, 3600)  # a TTL the preparation must lift, as RQ's PERSIST does
    sent, standalone = [], []
    real_execute, real_command = Pipeline.execute, type(rq.connection).execute_command

    def execute(self, *args, **kwargs):
        sent.append([command[0][0] for command in self.command_stack])
        return real_execute(self, *args, **kwargs)

    def command(self, *args, **kwargs):
        standalone.append(args[0])
        return real_command(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", execute)
    monkeypatch.setattr(type(rq.connection), "execute_command", command)
    rq_worker = worker.build_worker("simple", name=f"inproc-{uuid.uuid4().hex[:8]}")
    assert rq_worker.work(burst=True) is True
    monkeypatch.undo()
    seen = plain.fetch_job(job.id).return_value()
    # While the job ran, everything RQ's three preparation round trips write was in place.
    assert seen == {"status": "started", "ttl": -1, "worker_state": "busy", "current_job": job.id, "started": True,
                    "intermediate": []}
    # In one transaction: the execution (its hash, the started registry), the worker's state and bookkeeping, the
    # job's status, its removal from the intermediate queue and the PERSIST, and no PERSIST of its own after it.
    [prepared] = [commands for commands in sent if "PERSIST" in commands]
    assert {"HSET", "ZADD", "LREM", "EXPIRE"} <= set(prepared)
    assert "PERSIST" not in standalone


# sha256 (first 16 hex digits) of RQ 2.12.0's source of each method worker.py reproduces in part: LeanMixin's success
# transaction (handle_job_success, with Job.cleanup's writes), OnePreparationMixin's one preparation
# (prepare_execution + prepare_job_execution) and PreparedJob.perform (Job.perform without its PERSIST).
RQ_METHODS = {
    "BaseWorker.handle_job_success": "d3a8e0ee111a7a5a",
    "BaseWorker.prepare_execution": "899b4eaa689fcf35",
    "BaseWorker.prepare_job_execution": "783c9dc74a37560b",
    "Job.perform": "d86f4829a8d297be",
    "Job.cleanup": "16734aeb1eeab579",
}


@pytest.mark.parametrize("name", sorted(RQ_METHODS))
def test_the_rq_methods_the_worker_follows_are_unchanged(name):
    import hashlib
    import inspect

    from rq.job import Job as RQJob

    owner, method = name.split(".")
    source = inspect.getsource(getattr({"BaseWorker": BaseWorker, "Job": RQJob}[owner], method))
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == RQ_METHODS[name], (
        f"RQ's {name} changed: check workspace/jobs/worker.py (LeanMixin, OnePreparationMixin, PreparedJob) against it")
