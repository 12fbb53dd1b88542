"""Helpers for the jobs tests: projects with members of each role, and JOB_UPDATE events read off the Socket.IO
Redis channel (so tests await the worker's events instead of polling or sleeping)."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import redis

from workspace.extensions import db
from workspace.models import Membership, Project, ProjectFile, Role

WORKER = [sys.executable, "-m", "workspace.jobs.worker"]
# Small timings for live workers: leases expire in 2 s, the reaper runs every second, retries back off from 1 s.
FAST_JOBS = {"JOB_LEASE_SECONDS": "2", "JOB_REAPER_INTERVAL_SECONDS": "1", "JOB_BACKOFF_BASE_SECONDS": "1"}


def make_team(app, make_user, files: dict[str, str] | None = None) -> SimpleNamespace:
    """A project with an owner, a collaborator, a viewer, and an outsider who is not a member."""
    team = SimpleNamespace(owner=make_user(), collaborator=make_user(), viewer=make_user(), outsider=make_user())
    with app.app_context():
        project = Project(name="jobs", description="", owner_id=team.owner.id)
        db.session.add(project)
        db.session.flush()
        for user, role in ((team.owner, Role.OWNER), (team.collaborator, Role.COLLABORATOR),
                           (team.viewer, Role.VIEWER)):
            db.session.add(Membership(project_id=project.id, user_id=user.id, role=role))
        for path, content in (files or {}).items():
            db.session.add(ProjectFile(project_id=project.id, path=path, content=content, size=len(content.encode()),
                                       updated_by=team.owner.id))
        db.session.commit()
        team.project_id = project.id
    return team


def run(client, user, project_id: int, job_type: str, payload=None, key: str | None = None):
    headers = dict(user.headers)
    if key:
        headers["Idempotency-Key"] = key
    body = {"project_id": project_id, "type": job_type}
    if payload is not None:
        body["payload"] = payload
    return client.post("/api/v1/jobs/run", json=body, headers=headers)


def kill_tree(proc) -> None:
    """SIGKILL a worker and every process it forked (RQ's work horse runs in a process group of its own, so
    killing the worker's group alone would spare it): what a crashed machine looks like."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == proc.pid:
            children.append(int(stat.parent.name))
    proc.kill()
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class JobEvents:
    """JOB_UPDATE messages as the Socket.IO message queue carries them (JSON now, pickles in older versions)."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        self.seen: list[dict] = []

    def wait(self, predicate, timeout: float = 30) -> dict:
        """The first JOB_UPDATE (seen before or arriving within `timeout`) matching `predicate`."""
        for event in self.seen:
            if predicate(event):
                return event
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
            if not message:
                continue
            raw = message["data"]
            data = json.loads(raw) if raw[:1] in (b"{", b"[") else pickle.loads(raw)
            if data.get("method") == "emit" and data.get("event") == "JOB_UPDATE":
                event = data["data"]
                event = event[0] if isinstance(event, list) else event  # newer managers send the args list
                self.seen.append(event)
                if predicate(event):
                    return event
        raise TimeoutError(f"no matching JOB_UPDATE within {timeout}s; seen: {self.seen}")

    def statuses(self, job_id: int) -> list[str]:
        return [e["status"] for e in self.seen if e["job_id"] == job_id]

    def close(self) -> None:
        self.pubsub.close()


def rq_snapshot() -> dict:
    """An RQ task (plain RQ, not a row's job) that returns what Redis says about its own job and worker while it
    runs: what the worker's preparation wrote."""
    from rq import Queue, get_current_job
    from rq.registry import StartedJobRegistry

    job = get_current_job()
    connection = job.connection
    stored = connection.hgetall(f"rq:worker:{job.worker_name}")
    return {"status": connection.hget(job.key, "status").decode(), "ttl": connection.ttl(job.key),
            "worker_state": stored[b"state"].decode(), "current_job": stored[b"current_job"].decode(),
            "started": job.id in StartedJobRegistry(job.origin, connection=connection).get_job_ids(),
            "intermediate": connection.lrange(Queue(job.origin, connection=connection).intermediate_queue_key, 0, -1)}
