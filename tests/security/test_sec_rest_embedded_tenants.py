"""Attack: inherit a deleted project's jobs and exports (the embedded mode, and PostgreSQL for comparison).

Issue 10 found SQLite running without foreign keys and reusing ids: deleting a project left its jobs and export
artifacts behind, and the next project created (by anyone) got the same id, showing a stranger the old jobs and
letting them download the old export. Against a live web process in the embedded mode (SQLite file migrated by the
release command, no Redis: jobs run in-process): the deleted project's jobs and artifacts are gone from the database
and the next project gets a new id, with nothing of the old one in sight. The same replay runs on PostgreSQL with a
web process and a worker, where the foreign keys always held.
"""

from __future__ import annotations

import subprocess
import time

import pytest
import requests
import sqlalchemy as sa
from security_stack import signup, webs, worker

from processes import BIN, ROOT

pytestmark = pytest.mark.live


def wait_finished(base: str, headers: dict, job_id: int) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # bounded poll: the in-process runner announces nothing over HTTP
        job = requests.get(f"{base}/api/v1/jobs/{job_id}", headers=headers, timeout=10).json()
        if job["status"] in {"succeeded", "failed"}:
            return job
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} did not finish")


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request, live_env, processes, tmp_path):
    """(base URL, SQLAlchemy URL of its database) of an embedded (SQLite, no Redis) or a PostgreSQL deployment."""
    if request.param == "postgresql":
        (base,) = webs(live_env, processes, count=1)
        worker(live_env, processes)
        return base, live_env["DATABASE_URL"]
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    env = {**live_env, "DATABASE_URL": url, "REDIS_URL": ""}
    release = subprocess.run([str(BIN / "flask"), "--app", "workspace:create_app", "db", "upgrade"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=120)
    assert release.returncode == 0, release.stderr[-3000:]
    (base,) = webs(env, processes, count=1)
    return base, url


def test_a_new_tenant_never_sees_a_deleted_projects_jobs_or_exports(deployment):
    base, database_url = deployment

    alice = signup(base, name="Alice")
    project = requests.post(f"{base}/api/v1/projects/", json={"name": "Secret plans"}, headers=alice["headers"],
                            timeout=10).json()
    old_id = project["id"]
    saved = requests.put(f"{base}/api/v1/projects/{old_id}/files/plan.txt", json={"content": "launch codes"},
                         headers=alice["headers"], timeout=10)
    assert saved.status_code in (200, 201), saved.text
    run = requests.post(f"{base}/api/v1/jobs/run", json={"project_id": old_id, "type": "export", "payload": {}},
                        headers=alice["headers"], timeout=10)
    assert run.status_code == 202, run.text
    job_id = run.json()["job_id"]
    assert wait_finished(base, alice["headers"], job_id)["status"] == "succeeded"
    assert requests.get(f"{base}/api/v1/jobs/{job_id}/artifact", headers=alice["headers"], timeout=10).ok

    assert requests.delete(f"{base}/api/v1/projects/{old_id}", headers=alice["headers"], timeout=10).status_code == 204
    engine = sa.create_engine(database_url)
    with engine.connect() as db:
        for table, column in (("jobs", "project_id"), ("job_artifacts", "job_id"), ("job_artifact_chunks", "job_id"),
                              ("project_files", "project_id"), ("documents", "project_id")):
            key = job_id if column == "job_id" else old_id
            count = db.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {column} = :key"), {"key": key}).scalar()
            assert count == 0, f"{table} kept rows of the deleted project"
        if engine.dialect.name == "sqlite":
            assert db.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
    engine.dispose()

    mallory = signup(base, name="Mallory")
    fresh = requests.post(f"{base}/api/v1/projects/", json={"name": "Mine"}, headers=mallory["headers"],
                          timeout=10).json()
    assert fresh["id"] != old_id, "the deleted project's id was handed out again"
    jobs = requests.get(f"{base}/api/v1/projects/{fresh['id']}/jobs", headers=mallory["headers"], timeout=10)
    assert jobs.status_code == 200 and jobs.json()["items"] == []
    for path in (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/artifact", f"/api/v1/projects/{old_id}/jobs"):
        assert requests.get(base + path, headers=mallory["headers"], timeout=10).status_code == 404, path
