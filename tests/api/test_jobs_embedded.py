"""Embedded mode (no REDIS_URL): jobs run as background tasks of the one process, with the same states, retries,
backoff, events and artifacts as under RQ."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile

import pytest
from jobs_support import make_team, run

from workspace.extensions import socketio


@pytest.fixture
def embedded(make_app):
    return make_app(REDIS_URL=None, JOB_BACKOFF_BASE_SECONDS=0.05)


def wait_finished(client, user, job_id: int, timeout: float = 20) -> dict:
    """Poll the row until the job finishes (the embedded runner has no event a test could subscribe to)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/jobs/{job_id}", headers=user.headers).get_json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} still {body['status']} after {timeout}s")


def test_embedded_flaky_job_retries_then_succeeds_with_events(embedded, make_user, monkeypatch):
    sent = []
    original = socketio.emit
    monkeypatch.setattr(socketio, "emit", lambda event, data, **kw: (sent.append((event, data, kw)),
                                                                     original(event, data, **kw)))
    team = make_team(embedded, make_user)
    client = embedded.test_client()
    accepted = run(client, team.owner, team.project_id, "flaky", {"fail_times": 2})
    assert accepted.status_code == 202
    job = wait_finished(client, team.owner, accepted.get_json()["job_id"])
    assert (job["status"], job["attempts"], job["result"]) == ("succeeded", 3, {"succeeded_on_attempt": 3})
    # Members read the failure's own message, never the exception's class or a traceback.
    assert job["error"] == "flaky job failing on purpose (attempt 2 of the first 2)"
    # The row is committed before its JOB_UPDATE goes out: the last event may trail the poll that saw the row.
    deadline = time.monotonic() + 10
    while not any(data.get("status") == "succeeded" for _, data, _ in sent) and time.monotonic() < deadline:
        time.sleep(0.01)
    updates = [data for event, data, kw in sent if event == "JOB_UPDATE"]
    assert [u["status"] for u in updates] == ["queued", "running", "retrying", "running", "retrying", "running",
                                             "succeeded"]
    assert [u["seq"] for u in updates] == sorted(u["seq"] for u in updates)
    assert all(kw["to"] == f"project:{team.project_id}" for event, data, kw in sent if event == "JOB_UPDATE")


def test_embedded_job_fails_after_its_attempts(embedded, make_user):
    team = make_team(embedded, make_user)
    client = embedded.test_client()
    job_id = run(client, team.owner, team.project_id, "flaky", {"fail_times": 3}).get_json()["job_id"]
    job = wait_finished(client, team.owner, job_id)
    assert (job["status"], job["attempts"]) == ("failed", 3)
    assert "attempt 3" in job["error"] and job["finished_at"]


def test_embedded_sleep_and_export(embedded, make_user):
    files = {"README.md": "# hello\n", "src/app.py": "print('hi')\n" * 50, "empty.txt": ""}
    team = make_team(embedded, make_user, files=files)
    client = embedded.test_client()
    sleep_id = run(client, team.owner, team.project_id, "sleep", {"seconds": 0.2}).get_json()["job_id"]
    export_id = run(client, team.collaborator, team.project_id, "export", {}).get_json()["job_id"]
    assert wait_finished(client, team.owner, sleep_id)["result"] == {"slept": 0.2}
    export = wait_finished(client, team.viewer, export_id)
    assert export["status"] == "succeeded"
    assert export["progress"] == {"done": 3, "total": 3}
    download = client.get(f"/api/v1/jobs/{export_id}/artifact", headers=team.viewer.headers)
    assert download.status_code == 200 and download.mimetype == "application/zip"
    assert export["result"] == {"file_count": 3, "bytes": len(download.data),
                                "sha256": hashlib.sha256(download.data).hexdigest()}
    with zipfile.ZipFile(io.BytesIO(download.data)) as archive:
        assert {name: archive.read(name).decode() for name in archive.namelist()} == files
