"""Live co-editing (issue 11): the npm `yjs` + `y-socket.io` client (js/clients/yjs_agent.js) against two gunicorn
web processes sharing PostgreSQL and Redis. Every wait is on something the editors print, or a bounded poll."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from coedit_live import YjsAgent
from realtime_live import close_all, wait_until
from teams import make_team, project_url

from processes import start_web

pytestmark = pytest.mark.live
PATH = "notes/plan.md"


@pytest.fixture
def editors():
    opened = []
    yield opened
    close_all(opened)


@pytest.fixture
def team(client, make_user):
    return make_team(client, make_user)


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


def editor(editors, base, team, user, name, path=PATH) -> YjsAgent:
    agent = YjsAgent(base, team.project_id, path, user.access, name)
    editors.append(agent)
    return agent


def rest_file(base, team, user, path=PATH):
    return requests.get(base + project_url(team.project_id, "files", path), headers=user.headers, timeout=10)


def test_two_writers_on_two_processes_converge(webs, team, editors):
    (_, web1), (_, web2) = webs
    alice = editor(editors, web1, team, team.owner, "owner@web1")
    bob = editor(editors, web2, team, team.collaborator, "collab@web2")
    assert alice.wait_synced() == "" and bob.wait_synced() == ""
    with ThreadPoolExecutor(2) as pool:  # both type at the same time, one keystroke per update
        typing = [pool.submit(alice.type, "hello from alice. ", "end", 5),
                  pool.submit(bob.type, "BOB WAS HERE ", "start", 5)]
        for future in typing:
            future.result()
    final = alice.wait_text(lambda text: len(text) == 31)
    assert bob.wait_text(final) == final
    assert "hello from alice. " in final and "BOB WAS HERE " in final
    # Stored before relayed, and materialised: REST on either process reads the merged text.
    for base in (web1, web2):
        body = wait_until(lambda b=base: (r := rest_file(b, team, team.viewer)).status_code == 200
                          and r.json()["content"] == final and r.json(), what="REST text")
        assert body["version"] >= 2 and body["updated_by"] in (team.owner.id, team.collaborator.id)
    # A late joiner on either process receives the whole document.
    for base, name in ((web1, "late@web1"), (web2, "late@web2")):
        late = editor(editors, base, team, team.viewer, name)
        late.wait_synced()
        assert late.wait_text(final) == final
