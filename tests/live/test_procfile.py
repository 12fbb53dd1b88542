"""The Procfile, run as a platform runs it: its `release`, `web` (twice) and `worker` commands exactly as written,
through `sh -c`, with PORT and the URLs in the environment. Then a client signs up, joins a project over Socket.IO
on the other web process, runs a job that the worker completes, and both web processes report the same global
metrics. Finally no log line of any process holds the password or a token of the session.
"""

from __future__ import annotations

import json
import queue
import subprocess

import pytest
import requests
import socketio
from deploy_support import ROOT, fresh_schema, procfile, procfile_env, signal_group, wait_group
from prometheus_client.parser import text_string_to_metric_families

from processes import free_port, start, wait_http

pytestmark = pytest.mark.live
PASSWORD = "procfile passphrase 42"


def metric(base: str, name: str, **labels) -> float:
    text = requests.get(f"{base}/metrics", timeout=10).text
    wanted = set(labels.items())
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and wanted <= set(sample.labels.items()))


def test_procfile_commands_serve_the_contract(live_env, processes):
    commands = procfile()
    assert set(commands) >= {"release", "web", "worker"}
    with fresh_schema() as database_url:
        env = procfile_env(live_env, DATABASE_URL=database_url, LOG_LEVEL="DEBUG")

        release = subprocess.run(["sh", "-c", commands["release"]], cwd=ROOT, env=env, capture_output=True,
                                 text=True, timeout=120)
        assert release.returncode == 0, release.stdout + release.stderr
        assert "Running upgrade" in release.stderr + release.stdout  # it really built the empty schema

        webs = []
        for _ in range(2):
            port = free_port()
            proc = start(["sh", "-c", commands["web"]], {**env, "PORT": str(port)}, f"procfile-web-{port}")
            processes.append(proc)
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz", proc=proc)
            webs.append((proc, base))
        worker = start(["sh", "-c", commands["worker"]], env, "procfile-worker")
        processes.append(worker)
        (web_a, a), (web_b, b) = webs

        signup = requests.post(f"{a}/api/v1/auth/signup", timeout=10,
                               json={"email": "procfile@example.com", "password": PASSWORD, "name": "Proc"})
        assert signup.status_code == 201, signup.text
        tokens = [signup.json()["access_token"], signup.json()["refresh_token"]]
        headers = {"Authorization": f"Bearer {tokens[0]}"}
        project = requests.post(f"{a}/api/v1/projects/", json={"name": "Deploy"}, headers=headers, timeout=10)
        assert project.status_code == 201, project.text
        project_id = project.json()["id"]

        updates: queue.Queue = queue.Queue()
        client = socketio.Client(reconnection=False)
        client.on("JOB_UPDATE", updates.put)
        client.connect(b, auth={"token": tokens[0]}, wait_timeout=10)
        try:
            ack = client.call("join", {"project_id": project_id}, timeout=10)
            assert ack["ok"], ack

            run = requests.post(f"{a}/api/v1/jobs/run", headers=headers, timeout=10,
                                json={"project_id": project_id, "type": "echo", "payload": {"hello": "procfile"}})
            assert run.status_code == 202, run.text
            job_id = run.json()["job_id"]
            # The worker's JOB_UPDATE reaches a client of the other web process through the Redis queue.
            for _ in range(20):
                event = updates.get(timeout=30)
                if event["job_id"] == job_id and event["status"] == "succeeded":
                    break
            else:
                pytest.fail("no JOB_UPDATE succeeded")
            job = requests.get(f"{b}/api/v1/jobs/{job_id}", headers=headers, timeout=10).json()
            assert job["status"] == "succeeded" and job["result"] == {"hello": "procfile"}

            # Global metrics agree on both processes, including what the worker recorded.
            for base in (a, b):
                assert metric(base, "workspace_jobs", type="echo", status="succeeded") == 1
                assert metric(base, "workspace_job_duration_seconds_count", type="echo", outcome="succeeded") == 1
                assert metric(base, "workspace_sockets_in_projects") == 1
                assert metric(base, "workspace_events_emitted_total", event="JOB_UPDATE") >= 2
            assert metric(b, "workspace_socket_connections") == 1 and metric(a, "workspace_socket_connections") == 0
        finally:
            client.disconnect()

        refreshed = requests.post(f"{a}/api/v1/auth/refresh", timeout=10,
                                  headers={"Authorization": f"Bearer {tokens[1]}"})
        assert refreshed.status_code == 200
        tokens += [refreshed.json()["access_token"], refreshed.json()["refresh_token"]]
        for proc in processes:
            signal_group(proc)  # SIGTERM to every process of each group at once, as a platform stops its dynos
        for proc in processes:
            assert wait_group(proc), f"{proc.name} did not stop on SIGTERM:\n{proc.output()[-3000:]}"
        for proc in (web_a, web_b):
            # `sh` itself dies of the signal; gunicorn behind it shuts down cleanly.
            assert "Shutting down: Master" in proc.output(), proc.output()[-3000:]

    logs = {proc.name: proc.output() for proc in processes}
    for name, text in logs.items():
        for secret in (PASSWORD, *tokens, *(t.rsplit(".", 1)[-1] for t in tokens)):
            assert secret not in text, f"{name} logged a secret"
    # Every process logs one JSON object per line: the app, gunicorn, python's warnings, RQ.
    for name, text in logs.items():
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        assert all({"level", "time", "logger", "message"} <= set(line) for line in lines), name
    access = [json.loads(line) for line in logs[web_a.name].splitlines() if line.strip()]
    assert any(line.get("route") == "/api/v1/auth/signup" and line.get("status") == 201 for line in access)
