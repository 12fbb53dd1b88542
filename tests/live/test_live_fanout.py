"""The socket hot path on a real gunicorn process with the npm socket.io-client: each socket's events are handled in
order with a bounded backlog (rate_limited / coalesced past it, never service_unavailable, whoever floods), and a
client that dropped for a while gets every room event it missed when it joins again with `since_seq`."""

from __future__ import annotations

import json
import socket
import uuid

import pytest
import websocket
from jobs_support import WORKER
from realtime_live import NodeClient
from teams import project_url

from processes import start, start_web

pytestmark = pytest.mark.live


def web(live_env, processes, async_mode="eventlet", **env):
    proc, base = start_web({**live_env, "SHUTDOWN_DRAIN_SECONDS": "1", **env}, async_mode=async_mode)
    processes.append(proc)
    return base


def joined(base, user, project_id, clients, name):
    node = NodeClient(base, user.access, name=name)
    clients.append(node)
    assert node.wait_connected()["type"] == "connect"
    ack = node.emit("join", {"project_id": project_id})
    assert ack["ok"] is True, ack
    return node, ack


def codes(acks):
    return {a["error"]["code"] for a in acks if not a["ok"]}


@pytest.mark.parametrize("async_mode", ["eventlet", "gevent"])
def test_a_sockets_events_are_handled_in_the_order_it_sent_them(live_env, processes, clients, team, async_mode):
    base = web(live_env, processes, async_mode, SOCKET_EVENT_RATE_PER_SECOND="100000", SOCKET_BACKLOG="100")
    writer, _ = joined(base, team.owner, team.project_id, clients, "writer")
    watcher, _ = joined(base, team.viewer, team.project_id, clients, "watcher")
    payloads = [{"project_id": team.project_id, "path": "order.txt", "content": str(n)} for n in range(40)]
    acks = writer.burst("FILE_CHANGE", payloads, times=40)
    assert all(a["ok"] for a in acks), codes(acks)
    versions = [a["version"] for a in acks]
    assert versions == list(range(versions[0], versions[0] + 40))  # handled one after the other, in send order
    watcher.wait_event("FILE_CHANGE", lambda p: p["content"] == "39")
    assert [p["content"] for p in watcher.received("FILE_CHANGE")] == [str(n) for n in range(40)]


def test_a_flood_is_bounded_per_socket_and_never_makes_anyone_unavailable(live_env, processes, clients, team):
    # A tiny backlog and a two-connection Redis pool: a flooder fills its own lane, not the process's pool.
    base = web(live_env, processes, SOCKET_EVENT_RATE_PER_SECOND="100000", SOCKET_BACKLOG="4",
               REDIS_MAX_CONNECTIONS="2")
    flooder, _ = joined(base, team.owner, team.project_id, clients, "flooder")
    other, _ = joined(base, team.collaborator, team.project_id, clients, "other")
    files = [{"project_id": team.project_id, "path": "flood.txt", "content": str(n)} for n in range(200)]
    cursors = [{"project_id": team.project_id, "path": "flood.txt", "line": n, "column": 0} for n in range(50)]
    file_acks = flooder.burst("FILE_CHANGE", files, times=200)
    cursor_acks = flooder.burst("CURSOR_UPDATE", cursors, times=1000)
    assert other.emit("FILE_CHANGE", {"project_id": team.project_id, "path": "mine.txt", "content": "x"})["ok"]

    assert codes(file_acks) == {"rate_limited"}  # the backlog bound was reached, and nothing else went wrong
    handled = [a["version"] for a in file_acks if a["ok"]]
    assert handled == sorted(handled) and len(handled) >= 4
    assert codes(cursor_acks) <= {"rate_limited"}
    assert any(a.get("coalesced") for a in cursor_acks if a["ok"])


def test_a_client_that_dropped_gets_every_room_event_it_missed_in_order(app, client, live_env, processes, clients,
                                                                       team):
    base = web(live_env, processes)
    worker = start([*WORKER, "--worker-class", "simple", "--name", f"replay-{uuid.uuid4().hex[:8]}"], live_env,
                   "replay-worker")
    processes.append(worker)
    watcher, _ = joined(base, team.viewer, team.project_id, clients, "watcher")
    dropper, first = joined(base, team.collaborator, team.project_id, clients, "dropper")
    since = first["seq"]
    dropper.drop()

    # While it is away: files change, someone comes and goes (and moves a cursor), a job runs.
    for n in range(3):
        assert client.put(project_url(team.project_id, "files", "a.txt"), json={"content": f"v{n}"},
                          headers=team.owner.headers).status_code in (200, 201)
    visitor, _ = joined(base, team.owner, team.project_id, clients, "visitor")
    assert visitor.emit("CURSOR_UPDATE", {"project_id": team.project_id, "path": "a.txt", "line": 1,
                                          "column": 1})["ok"]
    assert visitor.emit("leave", {"project_id": team.project_id})["ok"]
    job = client.post("/api/v1/jobs/run", json={"project_id": team.project_id, "type": "echo", "payload": {}},
                      headers=team.owner.headers).get_json()
    watcher.wait_event("JOB_UPDATE", lambda p: p["job_id"] == job["job_id"] and p["status"] == "succeeded",
                       timeout=30)

    dropper.reconnect()
    ack = dropper.emit("join", {"project_id": team.project_id, "since_seq": since})
    assert ack["ok"] is True and "resync" not in ack, ack
    watcher.wait_event("USER_JOIN", lambda p: p["seq"] == ack["seq"])  # the watcher has everything up to ack.seq
    seen = [(i["event"], i["args"][0]) for i in watcher.inbox.snapshot()
            if i["type"] == "event" and isinstance(i["args"][0], dict) and since < i["args"][0].get("seq", 0)
            <= ack["seq"] and i["event"] != "CURSOR_UPDATE"]
    assert [(m["event"], m["data"]) for m in ack["missed"]] == seen
    kinds = [event for event, _ in seen]
    assert kinds.count("FILE_CHANGE") == 3 and kinds.count("JOB_UPDATE") == 3
    assert {"USER_JOIN", "USER_LEAVE"} <= set(kinds)
    assert [data["seq"] for _, data in seen] == sorted(data["seq"] for _, data in seen)


def socketio_over_raw_websocket(base: str, token: str, project_id: int) -> websocket.WebSocket:
    """A Socket.IO client by hand on a websocket whose receive buffer is small, joined to the project: a client that
    can stop reading."""
    ws = websocket.create_connection(base.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket", timeout=20,
                                     sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    assert ws.recv().startswith("0")
    ws.send("40" + json.dumps({"token": token}))
    assert ws.recv().startswith("40{")
    ws.send("420" + json.dumps(["join", {"project_id": project_id}]))
    answer = ws.recv()
    assert answer.startswith("430") and json.loads(answer[3:])[0]["ok"] is True, answer
    return ws


@pytest.mark.parametrize("async_mode", ["eventlet", "gevent"])
def test_a_client_that_stops_reading_holds_up_nobody_and_gets_every_event_in_order_once_it_reads(
        live_env, processes, clients, team, async_mode):
    """realtime/frames.py: frames the kernel does not take for a socket that fell behind wait for that socket's writer
    task; the room's other sockets get theirs at once, and the slow one gets everything, in order, when it reads."""
    base = web(live_env, processes, async_mode, SOCKET_EVENT_RATE_PER_SECOND="100000", SOCKET_BACKLOG="100")
    slow = socketio_over_raw_websocket(base, team.viewer.access, team.project_id)
    watcher, _ = joined(base, team.collaborator, team.project_id, clients, "watcher")
    writer, _ = joined(base, team.owner, team.project_id, clients, "writer")
    count, filler = 80, "x" * 100_000  # 8 MB: more than the kernel buffers between the server and `slow` hold
    payloads = [{"project_id": team.project_id, "path": "big.txt", "content": f"{n:04d}{filler}"} for n in range(count)]
    acks = writer.burst("FILE_CHANGE", payloads, times=count, timeout=60)
    assert all(a["ok"] for a in acks), codes(acks)
    last = f"{count - 1:04d}"
    watcher.wait_event("FILE_CHANGE", lambda p: p["content"].startswith(last), timeout=30)  # `slow` read nothing yet
    got = []
    try:
        while len(got) < count:
            message = slow.recv()
            if message == "2":
                slow.send("3")
            elif message.startswith('42["FILE_CHANGE"'):
                got.append(json.loads(message[2:])[1]["content"][:4])
    finally:
        slow.close()
    assert got == [f"{n:04d}" for n in range(count)]
