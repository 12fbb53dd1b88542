"""Attack: inherit a deleted project's jobs and exports in the embedded mode.

Issue 10 found SQLite running without foreign keys and reusing ids: deleting a project left its jobs and export
artifacts behind, and the next project created (by anyone) got the same id, showing a stranger the old jobs and
letting them download the old export. Against a live web process in the embedded mode (SQLite file migrated by the
release command, no Redis: jobs run in-process): the deleted project's jobs and artifacts are gone from the database
and the next project gets a new id, with nothing of the old one in sight.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time

import pytest
import requests
from security_stack import signup, webs

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


def test_a_new_tenant_never_sees_a_deleted_projects_jobs_or_exports(live_env, processes, tmp_path):
    database = tmp_path / "embedded.db"
    env = {**live_env, "DATABASE_URL": f"sqlite:///{database}", "REDIS_URL": ""}
    release = subprocess.run([str(BIN / "flask"), "--app", "workspace:create_app", "db", "upgrade"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=120)
    assert release.returncode == 0, release.stderr[-3000:]
    (base,) = webs(env, processes, count=1)

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
    with sqlite3.connect(database) as db:
        for table, column in (("jobs", "project_id"), ("job_artifacts", "job_id"), ("project_files", "project_id")):
            key = job_id if column == "job_id" else old_id
            assert db.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", (key,)).fetchone()[0] == 0, table
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []

    mallory = signup(base, name="Mallory")
    fresh = requests.post(f"{base}/api/v1/projects/", json={"name": "Mine"}, headers=mallory["headers"],
                          timeout=10).json()
    assert fresh["id"] != old_id, "the deleted project's id was handed out again"
    jobs = requests.get(f"{base}/api/v1/projects/{fresh['id']}/jobs", headers=mallory["headers"], timeout=10)
    assert jobs.status_code == 200 and jobs.json()["items"] == []
    for path in (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/artifact", f"/api/v1/projects/{old_id}/jobs"):
        assert requests.get(base + path, headers=mallory["headers"], timeout=10).status_code == 404, path
