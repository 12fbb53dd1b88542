"""Realtime across real processes: two gunicorn web processes sharing PostgreSQL and Redis, driven by the npm
socket.io-client (node) and python-socketio's client. Every wait is on an event or a bounded poll, never a sleep.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from realtime_live import NodeClient, PyClient, wait_until
from teams import project_url

from processes import free_port, start_web

# Stop every web process at once at the end (tests/socket_attacks.py): one by one would wait out each drain.
pytestmark = [pytest.mark.live, pytest.mark.usefixtures("stop_webs_together")]


def two_webs(live_env, processes, async_mode="eventlet", **env):
    """Two web processes, started side by side (startup dominates these tests' time)."""
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(start_web, {**live_env, "SHUTDOWN_DRAIN_SECONDS": "1", **env}, async_mode=async_mode)
                   for _ in range(2)]
        webs = [future.result() for future in futures]
    processes.extend(proc for proc, _ in webs)
    return webs


def online(base, user, project_id):
    response = requests.get(base + project_url(project_id, "workspace", "status"), headers=user.headers, timeout=10)
    assert response.status_code == 200, response.text
    return sorted(u["user_id"] for u in response.json()["online"])


def joined(client, project_id):
    assert client.wait_connected()["type"] == "connect"
    ack = client.emit("join", {"project_id": project_id})
    assert ack["ok"] is True, ack
    return ack


@pytest.mark.parametrize("async_mode", ["eventlet", "gevent"])
def test_users_on_two_processes_see_each_other(async_mode, live_env, processes, team, clients):
    (_, web1), (_, web2) = two_webs(live_env, processes, async_mode)
    owner = NodeClient(web1, team.owner.access, "owner@web1")
    collab = NodeClient(web2, team.collaborator.access, "collab@web2", transport="polling")  # long-polling works too
    viewer = PyClient(web2, team.viewer.access, "viewer@web2")
    clients += [owner, collab, viewer]
    joined(owner, team.project_id)
    ack = joined(collab, team.project_id)
    assert {u["user_id"] for u in ack["presence"]} == {team.owner.id, team.collaborator.id}
    join = owner.wait_event("USER_JOIN", lambda p: p["user"]["id"] == team.collaborator.id)
    assert join["user"]["name"] == "Collab" and join["seq"] == ack["seq"] and join["project_id"] == team.project_id
    joined(viewer, team.project_id)
    expected = sorted([team.owner.id, team.collaborator.id, team.viewer.id])
    assert online(web1, team.owner, team.project_id) == online(web2, team.viewer, team.project_id) == expected

    change = collab.emit("FILE_CHANGE", {"project_id": team.project_id, "path": "main.py", "content": "print(1)\n"})
    assert change["ok"] is True and change["version"] == 1
    seen = owner.wait_event("FILE_CHANGE")
    assert (seen["path"], seen["version"], seen["content"], seen["user"]["id"]) == \
        ("main.py", 1, "print(1)\n", team.collaborator.id)
    assert viewer.wait_event("FILE_CHANGE")["seq"] == seen["seq"]
    stale = owner.emit("FILE_CHANGE", {"project_id": team.project_id, "path": "main.py", "content": "x",
                                       "base_version": 0})
    assert stale["ok"] is False and stale["error"]["code"] == "conflict" and stale["current_version"] == 1

    cursor = {"project_id": team.project_id, "path": "main.py", "line": 4, "column": 2}
    assert owner.emit("CURSOR_UPDATE", cursor)["ok"] is True
    moved = collab.wait_event("CURSOR_UPDATE")
    assert moved == {**cursor, "user": {"id": team.owner.id, "name": "Owner"}, "seq": moved["seq"]}

    denied = viewer.emit("FILE_CHANGE", {"project_id": team.project_id, "path": "main.py", "content": "hack"})
    assert denied["ok"] is False and denied["error"]["code"] == "forbidden"
    assert viewer.emit("CURSOR_UPDATE", cursor)["ok"] is True  # viewers may still show where they are

    collab.close()
    left = owner.wait_event("USER_LEAVE")
    assert left["user"] == {"id": team.collaborator.id, "name": "Collab"}
    assert online(web1, team.owner, team.project_id) == sorted([team.owner.id, team.viewer.id])
    assert collab.received("FILE_CHANGE") == []  # the sender does not get its own change back
    files = requests.get(web2 + project_url(team.project_id, "files", "main.py"), headers=team.owner.headers,
                         timeout=10).json()
    assert files["content"] == "print(1)\n" and files["version"] == 1  # the viewer's attempt changed nothing


def test_outsiders_and_bad_tokens_are_refused(live_env, processes, team, clients, client):
    (_, web1), _ = two_webs(live_env, processes)
    outsider = NodeClient(web1, team.other.access, "outsider")
    clients.append(outsider)
    assert outsider.wait_connected()["type"] == "connect"
    ack = outsider.emit("join", {"project_id": team.project_id})
    assert ack["ok"] is False and ack["error"]["code"] == "project_not_found"
    missing = NodeClient(web1, None, "no token")
    forged = NodeClient(web1, team.owner.access[:-3] + "abc", "forged")
    clients += [missing, forged]
    assert "missing" in missing.wait_connected()["message"]
    refused = forged.wait_connected()
    assert refused["type"] == "connect_error" and "forged" in refused["message"]
    assert refused["data"] == {"code": "invalid_token"}
    assert client.post("/api/v1/auth/logout", headers=team.viewer.headers).status_code == 204
    revoked = NodeClient(web1, team.viewer.access, "revoked")
    clients.append(revoked)
    assert "revoked" in revoked.wait_connected()["message"]


def test_websocket_compression_offers_are_refused(live_env, processes):
    """Browsers always offer permessage-deflate; the handshake must come back without the extension."""
    (_, web1), _ = two_webs(live_env, processes)
    port = int(web1.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            assert chunk, f"connection closed during the handshake: {head!r}"
            head += chunk
    status_line, _, headers = head.partition(b"\r\n")
    assert b" 101 " in status_line, head
    assert b"sec-websocket-extensions" not in headers.lower(), head


def test_a_killed_process_users_leave_within_the_ttl(live_env, processes, team, clients):
    (proc1, web1), (_, web2) = two_webs(live_env, processes, PRESENCE_TTL_SECONDS="2")
    doomed = PyClient(web1, team.collaborator.access, "collab@web1")
    survivor = NodeClient(web2, team.owner.access, "owner@web2")
    clients += [doomed, survivor]
    joined(survivor, team.project_id)
    joined(doomed, team.project_id)
    survivor.wait_event("USER_JOIN", lambda p: p["user"]["id"] == team.collaborator.id)
    started = time.monotonic()
    proc1.kill()
    left = survivor.wait_event("USER_LEAVE", lambda p: p["user"]["id"] == team.collaborator.id, timeout=12)
    assert time.monotonic() - started < 10
    assert left["seq"] > 0
    assert online(web2, team.owner, team.project_id) == [team.owner.id]


def test_removing_a_collaborator_evicts_their_sockets_on_another_process(live_env, processes, team, clients):
    (_, web1), (_, web2) = two_webs(live_env, processes)
    removed = NodeClient(web2, team.collaborator.access, "collab@web2")
    watcher = NodeClient(web2, team.viewer.access, "viewer@web2")
    clients += [removed, watcher]
    joined(removed, team.project_id)
    joined(watcher, team.project_id)
    response = requests.delete(web1 + project_url(team.project_id, "collaborators", team.collaborator.id),
                               headers=team.owner.headers, timeout=10)
    assert response.status_code == 204
    assert removed.wait_event("MEMBERSHIP_CHANGED") == {"project_id": team.project_id, "role": None}
    assert watcher.wait_event("USER_LEAVE")["user"]["id"] == team.collaborator.id
    put = requests.put(web1 + project_url(team.project_id, "files", "secret.txt"), json={"content": "after"},
                       headers=team.owner.headers, timeout=10)
    assert put.status_code in (200, 201), put.text
    watcher.wait_event("FILE_CHANGE", lambda p: p["path"] == "secret.txt")
    # the watcher shares the removed user's process and the queue keeps order: had the removed socket still been
    # in the room, it would have received the change before (or with) the watcher
    assert removed.received("FILE_CHANGE") == []
    denied = removed.emit("CURSOR_UPDATE", {"project_id": team.project_id, "path": "a", "line": 0, "column": 0})
    assert denied["ok"] is False and denied["error"]["code"] == "not_joined"
    assert removed.emit("join", {"project_id": team.project_id})["error"]["code"] == "project_not_found"


def test_sigterm_clears_the_process_presence_at_once(live_env, processes, team, clients):
    (proc1, web1), (_, web2) = two_webs(live_env, processes)
    leaving = PyClient(web1, team.collaborator.access, "collab@web1")
    watcher = NodeClient(web2, team.owner.access, "owner@web2")
    clients += [leaving, watcher]
    joined(watcher, team.project_id)
    joined(leaving, team.project_id)
    started = time.monotonic()
    proc1.send_signal(signal.SIGTERM)
    watcher.wait_event("USER_LEAVE", lambda p: p["user"]["id"] == team.collaborator.id, timeout=8)
    assert time.monotonic() - started < 5, "USER_LEAVE must not wait for the graceful timeout or the TTL"
    leaving.inbox.wait(lambda i: i["type"] == "disconnect", 8, "the closing server drops its sockets")
    try:
        code = proc1.popen.wait(15)
    except subprocess.TimeoutExpired:
        pytest.fail("the web process did not exit after SIGTERM:\n" + proc1.output()[-6000:])
    assert code == 0
    assert online(web2, team.owner, team.project_id) == [team.owner.id]


def test_flood_and_malformed_payloads_leave_the_connection_usable(live_env, processes, team, clients, client):
    (_, web1), (_, web2) = two_webs(live_env, processes)
    flooder = NodeClient(web1, team.collaborator.access, "flooder@web1")
    watcher = NodeClient(web2, team.owner.access, "owner@web2")
    clients += [flooder, watcher]
    joined(flooder, team.project_id)
    joined(watcher, team.project_id)
    moves = [{"project_id": team.project_id, "path": "a.py", "line": n, "column": 1} for n in range(1000)]
    junk = [None, 5, "x", [], {"project_id": "1"}, {"project_id": team.project_id, "line": -1},
            {"project_id": team.project_id, "path": "../x", "content": "x"}]
    flooder.flood("CURSOR_UPDATE", moves, 1000)
    flooder.flood("FILE_CHANGE", junk, 200)
    last = watcher.wait_event("CURSOR_UPDATE", lambda p: p["line"] == 999, timeout=10)
    assert last["user"]["id"] == team.collaborator.id
    delivered = watcher.received("CURSOR_UPDATE")
    assert len(delivered) <= 100, f"{len(delivered)} of 1000 relayed: the throttle did not hold"
    seqs = [m["seq"] for m in delivered]
    assert seqs == sorted(seqs)
    for payload in junk:
        ack = flooder.emit("FILE_CHANGE", payload)
        assert ack["ok"] is False and ack["error"]["code"] in {"invalid_payload", "invalid_path", "rate_limited"}
    # still usable, and the other direction is unaffected
    assert watcher.emit("CURSOR_UPDATE", {**moves[0], "line": 5000})["ok"] is True
    assert flooder.wait_event("CURSOR_UPDATE", lambda p: p["line"] == 5000)["user"]["id"] == team.owner.id
    assert client.get(project_url(team.project_id, "files"), headers=team.owner.headers).json["items"] == []


def test_the_server_reconnects_to_a_restarted_redis(live_env, processes, team, clients, tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    def redis_server():
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
        wait_until(lambda: _pings(url), 10, what="dedicated redis up")
        return proc

    dedicated = redis_server()
    try:
        (_, web1), (_, web2) = two_webs({**live_env, "REDIS_URL": url}, processes, PRESENCE_TTL_SECONDS="3")
        a = NodeClient(web1, team.owner.access, "owner@web1")
        b = NodeClient(web2, team.collaborator.access, "collab@web2")
        clients += [a, b]
        joined(a, team.project_id)
        joined(b, team.project_id)
        dedicated.kill()
        dedicated.wait(5)
        dedicated = redis_server()
        line = iter(range(100, 10_000))

        def cursor_flows():
            n = next(line)
            a.emit("CURSOR_UPDATE", {"project_id": team.project_id, "path": "a", "line": n, "column": 0})
            try:
                b.wait_event("CURSOR_UPDATE", lambda p, n=n: p["line"] == n, timeout=0.5)
                return True
            except TimeoutError:
                return False

        wait_until(cursor_flows, 30, interval=0, what="events flowing again after the Redis restart")
        assert a.inbox.snapshot()[-1]["type"] != "disconnect"
        # presence was lost with Redis' data; the heartbeat noticed and wrote it back
        both = sorted([team.owner.id, team.collaborator.id])
        wait_until(lambda: online(web2, team.owner, team.project_id) == both, 15, what="presence re-asserted")
    finally:
        dedicated.kill()
        dedicated.wait(5)


def _pings(url: str) -> bool:
    try:
        return redis.Redis.from_url(url, socket_timeout=0.5).ping()
    except redis.RedisError:
        return False
