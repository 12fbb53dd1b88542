"""Co-editing through faults (issue 11, "Bad input and faults"): a Redis restart and a PostgreSQL hiccup while the
npm `yjs` + `y-socket.io` editors (js/clients/yjs_agent.js) are connected to two gunicorn web processes. Each test
runs its own Redis or names its own database sessions, so it can break them without touching anyone else's."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa
from coedit_live import YjsAgent
from realtime_live import wait_until
from teams import project_url

from processes import RedisServer, free_port, start_web

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("stop_webs_together")]
PATH = "faults.md"


def two_webs(env, processes, async_mode="eventlet"):
    with ThreadPoolExecutor(2) as pool:
        webs = [future.result() for future in [pool.submit(start_web, {**env, "SHUTDOWN_DRAIN_SECONDS": "1"},
                                                           async_mode=async_mode) for _ in range(2)]]
    processes.extend(proc for proc, _ in webs)
    return [base for _, base in webs]


def editors(clients, team, web1, web2):
    alice = YjsAgent(web1, team.project_id, PATH, team.owner.access, "alice@web1")
    bob = YjsAgent(web2, team.project_id, PATH, team.collaborator.access, "bob@web2")
    clients.extend([alice, bob])
    alice.wait_synced(), bob.wait_synced()
    return alice, bob


def stored_text(database_url, team):
    """The file's text as committed (read from PostgreSQL directly: REST needs Redis for its token checks)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT content FROM project_files WHERE project_id = :p AND path = :path"),
                                {"p": team.project_id, "path": PATH}).scalar()
    finally:
        engine.dispose()


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, which it may kill and start again on the same port."""
    server = RedisServer(tmp_path)
    yield server
    server.kill()


@pytest.mark.parametrize("async_mode", ["eventlet", "gevent"])
def test_a_redis_restart_is_told_to_the_editor_and_everyone_resyncs(async_mode, live_env, processes, team, clients,
                                                                    own_redis, database_url):
    web1, web2 = two_webs({**live_env, "REDIS_URL": own_redis.url}, processes, async_mode)
    alice, bob = editors(clients, team, web1, web2)
    alice.type("before.")
    bob.wait_text("before.")
    own_redis.kill()
    # Stored in PostgreSQL, but the relay to web2 is lost: alice is told, and nothing she typed is lost.
    alice.type(" during.")
    assert "Redis" in alice.wait_error("unavailable")["message"]
    wait_until(lambda: stored_text(database_url, team) == "before. during.", what="typing stored meanwhile")
    own_redis.start()
    # web2 re-subscribes to the queue and sends its editors the document from the database.
    assert bob.wait_text("before. during.", timeout=30) == "before. during."
    alice.type(" after.")
    assert bob.wait_text("before. during. after.") == "before. during. after."  # relays flow again
    response = requests.get(web2 + project_url(team.project_id, "files", PATH), headers=team.owner.headers,
                            timeout=10)
    assert response.json()["content"] == "before. during. after."


def test_a_postgresql_hiccup_is_told_and_the_editor_resyncs(live_env, processes, team, clients, database_url):
    """Every database session of both web processes is terminated under them (their pooled connections are reused
    without a ping: DB_IDLE_PING_SECONDS is high). The write that meets a dead connection is refused with
    `unavailable`, nothing is relayed unstored, and the editor's reconnect stores what it typed."""
    name = f"coedit-faults-{uuid.uuid4().hex[:8]}"
    env = {**live_env, "DATABASE_URL": f"{live_env['DATABASE_URL']}&application_name={name}",
           "DB_IDLE_PING_SECONDS": "3600"}
    web1, web2 = two_webs(env, processes)
    alice, bob = editors(clients, team, web1, web2)
    alice.type("one.")
    bob.wait_text("one.")
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            killed = conn.execute(sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                          "WHERE application_name = :name"), {"name": name}).scalar()
            conn.commit()
    finally:
        engine.dispose()
    assert killed >= 2  # each process held at least one
    alice.type(" two.")
    assert "resync" in alice.wait_error("unavailable")["message"]
    alice.inbox.wait(lambda i: i["type"] == "disconnect", what="alice's transport closed to resync")
    assert bob.wait_text("one. two.", timeout=30) == "one. two."
    assert alice.wait_text("one. two.") == "one. two."
    wait_until(lambda: stored_text(database_url, team) == "one. two.", what="the typing stored after the hiccup")


def test_a_killed_web_process_loses_nothing_and_its_editor_merges_back(live_env, processes, team, clients,
                                                                       database_url):
    """kill -9 of one of two web processes while both editors type: what was relayed was stored, the other process
    keeps editing, and the dropped editor's offline typing merges in once a process is back on its URL."""
    env = {**live_env, "SHUTDOWN_DRAIN_SECONDS": "1"}
    port = free_port()
    with ThreadPoolExecutor(2) as pool:
        webs = [future.result() for future in [pool.submit(start_web, env, port), pool.submit(start_web, env)]]
    processes.extend(proc for proc, _ in webs)
    (victim, web1), (_, web2) = webs
    alice, bob = editors(clients, team, web1, web2)
    alice.type("stored.")
    bob.wait_text("stored.")  # relayed, so committed
    victim.kill()
    alice.inbox.wait(lambda i: i["type"] == "disconnect", what="alice dropped by the crash")
    assert stored_text(database_url, team) == "stored."
    alice.type(" offline.")
    bob.type(" live.")
    restarted, _ = start_web(env, port)
    processes.append(restarted)
    merged = alice.wait_text(lambda text: "offline." in text and "live." in text, timeout=30)
    assert bob.wait_text(merged) == merged and merged.startswith("stored.")
    wait_until(lambda: stored_text(database_url, team) == merged, what="the merged text stored")


def test_updates_that_break_yrs_are_refused_through_the_socket_lanes(live_env, processes, team, clients):
    """The crashers of tests/unit/test_yjs_wire.py sent by the npm client, straight into its socket's lane (where
    waiting updates merge): each refused with invalid_update, the socket keeps editing, the document stays whole."""
    web1, web2 = two_webs(live_env, processes)
    alice, bob = editors(clients, team, web1, web2)
    alice.type("ok.")
    for crasher in ("0201020504010004f09f988002020000ffffffffffffffff7f00030103010001",
                    "01020201000043ffffffffffffffffff01050000"):
        alice.send("raw", event="sync-update", hex=crasher)
    alice.type(" still.")
    assert bob.wait_text("ok. still.") == "ok. still."
    wait_until(lambda: [e["code"] for e in alice.errors()] == ["invalid_update", "invalid_update"],
               what="both refused")
    late = YjsAgent(web2, team.project_id, PATH, team.viewer.access, "late@web2")
    clients.append(late)
    assert late.wait_text("ok. still.") == "ok. still."
