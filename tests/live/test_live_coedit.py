"""Live co-editing (issue 11): the npm `yjs` + `y-socket.io` client (js/clients/yjs_agent.js) against two gunicorn
web processes sharing PostgreSQL and Redis. Every wait is on something the editors print, or a bounded poll."""

from __future__ import annotations

import signal
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa
from coedit_live import YjsAgent
from jobs_support import WORKER
from realtime_live import NodeClient, wait_until
from teams import project_url

from processes import BIN, ROOT, free_port, start, start_web
from workspace.extensions import db
from workspace.models import Document

pytestmark = pytest.mark.live
PATH = "notes/plan.md"


@pytest.fixture
def webs(live_env, processes):
    """Two web processes, started side by side."""
    env = {**live_env, "SHUTDOWN_DRAIN_SECONDS": "1", "COEDIT_FILE_CHANGE_INTERVAL": "0.2"}
    with ThreadPoolExecutor(2) as pool:
        started = [future.result() for future in [pool.submit(start_web, env) for _ in range(2)]]
    processes.extend(proc for proc, _ in started)
    yield started
    for proc, _ in started:
        proc.send_signal(signal.SIGTERM)


def editor(clients, base, team, user, name, path=PATH) -> YjsAgent:
    agent = YjsAgent(base, team.project_id, path, user.access, name)
    clients.append(agent)
    return agent


def rest_file(base, team, user, path=PATH):
    return requests.get(base + project_url(team.project_id, "files", path), headers=user.headers, timeout=10)


def test_two_writers_on_two_processes_converge(webs, team, clients):
    (_, web1), (_, web2) = webs
    alice = editor(clients, web1, team, team.owner, "owner@web1")
    bob = editor(clients, web2, team, team.collaborator, "collab@web2")
    watcher = NodeClient(web1, team.viewer.access, "room@web1")  # the project room of the default namespace
    clients.append(watcher)
    assert watcher.wait_connected()["type"] == "connect"
    assert watcher.emit("join", {"project_id": team.project_id})["ok"] is True
    assert alice.wait_synced() == "" and bob.wait_synced() == ""
    with ThreadPoolExecutor(2) as pool:  # both type at the same time, one keystroke per update
        typing = [pool.submit(alice.type, "hello from alice. ", "end", 5),
                  pool.submit(bob.type, "BOB WAS HERE ", "start", 5)]
        for future in typing:
            future.result()
    final = alice.wait_text(lambda text: len(text) == 31)
    assert bob.wait_text(final) == final
    assert "hello from alice. " in final and "BOB WAS HERE " in final
    # FILE_CHANGE still reaches the project room, batched: far fewer than one per keystroke, the last one current.
    watcher.wait_event("FILE_CHANGE", lambda p: p["path"] == PATH and p.get("content") == final)
    assert len(watcher.received("FILE_CHANGE")) < 31
    # Stored before relayed, and materialised: REST on either process reads the merged text.
    for base in (web1, web2):
        body = wait_until(lambda b=base: (r := rest_file(b, team, team.viewer)).status_code == 200
                          and r.json()["content"] == final and r.json(), what="REST text")
        assert body["version"] >= 2 and body["updated_by"] in (team.owner.id, team.collaborator.id)
    # A late joiner on either process receives the whole document.
    for base, name in ((web1, "late@web1"), (web2, "late@web2")):
        late = editor(clients, base, team, team.viewer, name)
        late.wait_synced()
        assert late.wait_text(final) == final


def test_viewer_syncs_and_sees_live_edits_but_its_edits_never_land(webs, team, clients):
    (_, web1), (_, web2) = webs
    owner = editor(clients, web1, team, team.owner, "owner@web1")
    viewer = editor(clients, web2, team, team.viewer, "viewer@web2")
    owner.wait_synced(), viewer.wait_synced()
    viewer.type("X")
    assert viewer.wait_error("forbidden")["message"]
    owner.type("ok")
    viewer.wait_text(lambda text: "ok" in text)  # live updates reach the viewer
    # What is stored is what a newcomer loads: the owner's text only, on either process.
    for base in (web1, web2):
        late = editor(clients, base, team, team.collaborator, f"late@{base[-5:]}")
        assert late.wait_text("ok") == "ok"
    assert rest_file(web1, team, team.owner).json()["content"] == "ok"
    assert "X" not in owner.text()


def test_rest_writes_reach_live_editors_through_updates(webs, team, clients):
    (_, web1), (_, web2) = webs
    url = project_url(team.project_id, "files", PATH)
    alice = editor(clients, web2, team, team.collaborator, "collab@web2")
    alice.wait_synced()
    alice.type("line one\n")
    version = wait_until(lambda: (r := rest_file(web1, team, team.owner)).status_code == 200
                         and r.json()["content"] == "line one\n" and r.json()["version"], what="typed text stored")
    stale = requests.put(web1 + url, json={"content": "nope", "base_version": version - 1},
                         headers=team.owner.headers, timeout=10)
    assert stale.status_code == 409 and stale.json()["error"]["details"]["current_version"] == version
    put = requests.put(web1 + url, json={"content": "line zero\nline one\n", "base_version": version},
                       headers=team.owner.headers, timeout=10)
    assert put.status_code == 200 and put.json()["version"] == version + 1
    assert alice.wait_text("line zero\nline one\n")
    # The editor keeps typing on top of the REST write: a diff, not a replacement, so both survive.
    alice.type("line two\n")
    wait_until(lambda: rest_file(web1, team, team.owner).json()["content"] == "line zero\nline one\nline two\n",
               what="typing after a REST write")
    assert requests.delete(web1 + url, headers=team.owner.headers, timeout=10).status_code == 204
    assert alice.wait_text("") == ""
    assert rest_file(web2, team, team.owner).status_code == 404


def test_text_survives_a_restart_of_every_web_process(live_env, processes, team, clients):
    env = {**live_env, "SHUTDOWN_DRAIN_SECONDS": "1"}
    proc, web = start_web(env)
    processes.append(proc)
    writer = editor(clients, web, team, team.owner, "owner")
    writer.wait_synced()
    writer.type("durable text")
    wait_until(lambda: rest_file(web, team, team.owner).json().get("content") == "durable text", what="stored")
    proc.kill()  # a crash: nothing acknowledged may be lost
    proc2, web2 = start_web(env)
    processes.append(proc2)
    assert editor(clients, web2, team, team.viewer, "after-restart").wait_text("durable text") == "durable text"


def test_bad_input_is_refused_and_the_connection_stays_usable(live_env, processes, team, clients):
    env = {**live_env, "SHUTDOWN_DRAIN_SECONDS": "1", "COEDIT_MAX_UPDATE_BYTES": "2048",
           "COEDIT_MAX_AWARENESS_BYTES": "512", "COEDIT_MAX_STRIKES": "4"}
    proc, web = start_web(env)
    processes.append(proc)
    owner = editor(clients, web, team, team.owner, "owner")
    owner.wait_synced()
    owner.send("raw", event="sync-update", hex="ffffffff")
    owner.wait_error("invalid_update")
    owner.send("raw", event="sync-update", hex="00" * 4096)
    owner.wait_error("too_large")
    owner.send("raw", event="awareness-update", hex="0501")
    wait_until(lambda: [e["code"] for e in owner.errors()].count("invalid_update") == 2, what="awareness refused")
    owner.type("still fine")  # nothing stored from the bad messages; the socket works
    assert editor(clients, web, team, team.viewer, "reader").wait_text("still fine") == "still fine"
    # Repeated abuse closes the socket.
    for _ in range(4):
        owner.send("raw", event="sync-update", hex="ffffffff")
    owner.wait_error("too_many_errors")
    owner.inbox.wait(lambda i: i["type"] == "disconnect", what="abuser disconnected")


def test_outsiders_and_bad_tokens_cannot_connect_and_removed_members_are_disconnected(webs, team, clients):
    (_, web1), (_, web2) = webs
    outsider = editor(clients, web1, team, team.other, "outsider")
    forged = YjsAgent(web1, team.project_id, PATH, "not-a-token", "forged")
    clients.append(forged)
    for agent, code in ((outsider, "project_not_found"), (forged, "invalid_token")):
        item = agent.wait_connected()
        assert item["type"] == "connect_error" and item["data"]["code"] == code, item
    collab = editor(clients, web2, team, team.collaborator, "collab@web2")
    collab.wait_synced()
    removed = requests.delete(web1 + project_url(team.project_id, "collaborators", team.collaborator.id),
                              headers=team.owner.headers, timeout=10)
    assert removed.status_code == 204
    assert collab.wait_error("forbidden")
    collab.inbox.wait(lambda i: i["type"] == "disconnect", what="removed member disconnected")
    # The token rules of the default namespace hold here too: a logout ends the document sockets using the token.
    viewer = editor(clients, web2, team, team.viewer, "viewer@web2")
    viewer.wait_synced()
    logout = requests.post(web1 + "/api/v1/auth/logout", json={}, headers=team.viewer.headers, timeout=10)
    assert logout.status_code == 204
    viewer.inbox.wait(lambda i: i["type"] == "disconnect", what="logged-out viewer disconnected")


def test_awareness_is_relayed_across_processes_and_given_to_newcomers(webs, team, clients):
    (_, web1), (_, web2) = webs
    alice = editor(clients, web1, team, team.owner, "alice@web1")
    bob = editor(clients, web2, team, team.collaborator, "bob@web2")
    alice.wait_synced(), bob.wait_synced()
    alice.send("awareness", state={"user": {"name": "Alice", "color": "#f00"}, "cursor": 3})

    def sees_alice(item):
        return item["type"] == "awareness" and any(s and s.get("user", {}).get("name") == "Alice"
                                                   for s in item["states"].values())

    bob.inbox.wait(sees_alice, what="bob sees alice's caret")
    carol = editor(clients, web2, team, team.viewer, "carol@web2")
    carol.inbox.wait(sees_alice, what="a newcomer is given alice's state at connect")
    alice.proc.kill()  # no goodbye from the client: the server announces that alice's client left
    bob.inbox.wait(lambda i: i["type"] == "awareness" and not any(
        s and s.get("user", {}).get("name") == "Alice" for s in i["states"].values()), what="alice gone for bob")


def test_the_rq_worker_compacts_a_long_history_and_loading_gives_the_same_text(live_env, processes, team, clients,
                                                                                app):
    env = {**live_env, "SHUTDOWN_DRAIN_SECONDS": "1", "COEDIT_COMPACT_THRESHOLD": "5"}
    proc, web = start_web(env)
    processes.append(proc)
    processes.append(start([*WORKER, "--name", f"coedit-{uuid.uuid4().hex[:8]}"], env, "compaction-worker"))
    writer = editor(clients, web, team, team.owner, "owner")
    reader = editor(clients, web, team, team.viewer, "reader")
    writer.wait_synced()
    reader.wait_synced()
    typed = ""
    for word in ["compact ", "me ", "compact ", "me ", "compact ", "me "]:
        # One word at a time, each seen by the reader (so stored) before the next: at least six stored updates
        # (keystrokes waiting on the socket merge into one), one compaction job past five.
        writer.type(word)
        typed += word
        reader.wait_text(typed)

    def compacted():
        with app.app_context():
            row = db.session.execute(sa.select(Document.snapshot_upto, Document.update_count)).first()
            db.session.rollback()
            return row is not None and row.snapshot_upto > 0 and row

    row = wait_until(compacted, timeout=30, what="the worker's compaction")
    assert row.update_count < 5
    assert editor(clients, web, team, team.viewer, "loader").wait_text(typed) == typed


def test_editors_resync_after_every_web_process_restarts(live_env, processes, team, clients):
    env = {**live_env, "SHUTDOWN_DRAIN_SECONDS": "1"}
    ports = [free_port(), free_port()]
    webs = [start_web(env, port=port) for port in ports]
    processes.extend(proc for proc, _ in webs)
    alice = editor(clients, webs[0][1], team, team.owner, "owner@web1")
    bob = editor(clients, webs[1][1], team, team.collaborator, "collab@web2")
    alice.wait_synced(), bob.wait_synced()
    alice.type("before.")
    bob.wait_text("before.")
    for proc, _ in webs:
        proc.send_signal(signal.SIGTERM)
    for proc, _ in webs:
        proc.stop()
    alice.inbox.wait(lambda i: i["type"] == "disconnect", what="alice dropped")
    alice.type(" offline.")  # typed while no server runs: kept by the client, sent when it is back
    restarted = [start_web(env, port=port) for port in ports]
    processes.extend(proc for proc, _ in restarted)
    assert bob.wait_text("before. offline.", timeout=30) == "before. offline."
    wait_until(lambda: rest_file(restarted[0][1], team, team.owner).json().get("content") == "before. offline.",
               what="the offline typing stored")


def test_embedded_mode_coedits_the_same(live_env, processes, clients, tmp_path):
    """SQLite, no Redis, one process: the same protocol, storage and REST view."""
    env = {**live_env, "REDIS_URL": "", "DATABASE_URL": f"sqlite:///{tmp_path / 'embedded.db'}",
           "SHUTDOWN_DRAIN_SECONDS": "1"}
    subprocess.run([str(BIN / "flask"), "--app", "workspace:create_app", "db", "upgrade"], env=env, check=True,
                   cwd=ROOT, capture_output=True, timeout=120)
    proc, web = start_web(env)
    processes.append(proc)
    tokens = []
    for name in ("Ann", "Ben"):
        signup = requests.post(web + "/api/v1/auth/signup", timeout=10,
                               json={"email": f"{name}@example.com", "password": "a long enough pass 1", "name": name})
        assert signup.status_code == 201, signup.text
        tokens.append(signup.json()["access_token"])
    auth = {"Authorization": f"Bearer {tokens[0]}"}
    project_id = requests.post(web + "/api/v1/projects/", json={"name": "e"}, headers=auth, timeout=10).json()["id"]
    invited = requests.post(web + project_url(project_id, "collaborators"), headers=auth, timeout=10,
                            json={"email": "ben@example.com", "role": "collaborator"})
    assert invited.status_code == 201, invited.text
    ann, ben = (YjsAgent(web, project_id, PATH, tokens[i], name) for i, name in enumerate(("ann", "ben")))
    clients.extend([ann, ben])
    ann.wait_synced(), ben.wait_synced()
    ann.type("embedded ")
    ben.wait_text("embedded ")
    ben.type("works")
    assert ann.wait_text("embedded works")
    stored = requests.get(web + project_url(project_id, "files", PATH), headers=auth, timeout=10).json()
    assert stored["content"] == "embedded works"
