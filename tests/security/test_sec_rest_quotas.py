"""Attack: fill the server's storage through one project.

Issue 10 found no quotas: a member could create files without end and grow them to any total. Against two live web
processes and a worker, with small quotas: past the file count or the byte total, REST PUT and socket FILE_CHANGE
are refused with 413 and the contract's error body (whichever process takes the write), nothing is stored, and a
write that shrinks the project still passes.
"""

from __future__ import annotations

import pytest
import requests
import socketio
from security_stack import signup, webs, worker

pytestmark = pytest.mark.live


def put(base: str, headers: dict, project_id: int, path: str, content: str) -> requests.Response:
    return requests.put(f"{base}/api/v1/projects/{project_id}/files/{path}", json={"content": content},
                        headers=headers, timeout=10)


def test_file_count_and_byte_quotas_hold_on_every_process_and_transport(live_env, processes):
    env = {**live_env, "MAX_FILES_PER_PROJECT": "3", "MAX_PROJECT_BYTES": "3000"}
    a, b = webs(env, processes, count=2)
    worker(env, processes)
    owner = signup(a)
    project_id = requests.post(f"{a}/api/v1/projects/", json={"name": "Quota"}, headers=owner["headers"],
                               timeout=10).json()["id"]
    for n, base in enumerate((a, b, a)):
        assert put(base, owner["headers"], project_id, f"f{n}.txt", "x" * 900).status_code == 201

    for base in (a, b):  # a fourth file, on either process
        refused = put(base, owner["headers"], project_id, "f3.txt", "small")
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"]["code"] == "file_quota_exceeded"
        assert refused.json()["error"]["details"] == {"files": 3, "max_files": 3}

    grown = put(b, owner["headers"], project_id, "f0.txt", "x" * 1300)  # 1300 + 900 + 900 > 3000
    assert grown.status_code == 413 and grown.json()["error"]["code"] == "storage_quota_exceeded", grown.text

    client = socketio.Client(reconnection=False)
    client.connect(b, auth={"token": owner["access_token"]}, wait_timeout=10)
    try:
        assert client.call("join", {"project_id": project_id}, timeout=10)["ok"]
        ack = client.call("FILE_CHANGE", {"project_id": project_id, "path": "f4.txt", "content": "y"}, timeout=10)
        assert ack["ok"] is False and ack["error"]["code"] == "file_quota_exceeded", ack
        ack = client.call("FILE_CHANGE", {"project_id": project_id, "path": "f1.txt", "content": "z" * 1500},
                          timeout=10)
        assert ack["ok"] is False and ack["error"]["code"] == "storage_quota_exceeded", ack
    finally:
        client.disconnect()

    files = requests.get(f"{a}/api/v1/projects/{project_id}/files", headers=owner["headers"], timeout=10).json()
    assert sorted((f["path"], f["size"]) for f in files["items"]) == [("f0.txt", 900), ("f1.txt", 900),
                                                                       ("f2.txt", 900)]
    # Shrinking and deleting always work, and make room again.
    assert put(a, owner["headers"], project_id, "f0.txt", "short").status_code == 200
    assert requests.delete(f"{b}/api/v1/projects/{project_id}/files/f2.txt", headers=owner["headers"],
                           timeout=10).status_code == 204
    assert put(a, owner["headers"], project_id, "f3.txt", "x" * 2000).status_code == 201
