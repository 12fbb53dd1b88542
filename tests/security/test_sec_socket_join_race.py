"""Attack: stay in a project's room after being removed, by joining while the removal lands (issue 10, "A join can
outrun a removal").

`join` checked membership, then recorded presence, then entered the room; a removal landing in between (about 1 in
110 tries) left a socket that was no longer a member in the room, receiving file contents until it disconnected.
Here the overlap is forced, not hoped for: the web process runs with FAILPOINTS naming a pause point inside
`join`, the test waits until the join is parked there, removes the member through REST on the other process, then
releases the join.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from realtime_live import NodeClient
from socket_attacks import webs
from teams import project_url

from services import REDIS_URL

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("stop_webs_together")]



@pytest.mark.parametrize("pause", ["join.after_authorize", "join.after_presence"])
def test_a_member_removed_during_join_is_not_left_in_the_room(pause, live_env, processes, team, clients,
                                                               redis_prefix):
    (_, web1), (_, web2) = webs(live_env, processes, FAILPOINTS=pause)
    store = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    joiner = NodeClient(web1, team.collaborator.access, "removed@web1")
    watcher = NodeClient(web1, team.viewer.access, "watcher@web1")
    clients += [joiner, watcher]
    for client in (joiner, watcher):
        assert client.wait_connected()["type"] == "connect"
    # the watcher joins first (and once, past the pause point), so only the joiner's join is parked below
    store.rpush(f"{redis_prefix}failpoint:{pause}:release", "go")
    assert watcher.emit("join", {"project_id": team.project_id})["ok"] is True
    store.delete(f"{redis_prefix}failpoint:{pause}:reached")

    with ThreadPoolExecutor(1) as pool:
        join = pool.submit(joiner.emit, "join", {"project_id": team.project_id})
        assert store.blpop([f"{redis_prefix}failpoint:{pause}:reached"], timeout=15), "join never reached " + pause
        removed = requests.delete(web2 + project_url(team.project_id, "collaborators", team.collaborator.id),
                                  headers=team.owner.headers, timeout=10)
        assert removed.status_code == 204, removed.text
        store.rpush(f"{redis_prefix}failpoint:{pause}:release", "go")
        ack = join.result(timeout=20)

    put = requests.put(web2 + project_url(team.project_id, "files", "secret.txt"), json={"content": "after removal"},
                       headers=team.owner.headers, timeout=10)
    assert put.status_code in (200, 201), put.text
    # the watcher shares the joiner's process, and the queue keeps order: a joiner still in the room would have
    # received the change before (or with) the watcher
    watcher.wait_event("FILE_CHANGE", lambda p: p["path"] == "secret.txt")
    assert joiner.received("FILE_CHANGE") == [], "a removed member received file contents"
    assert ack["ok"] is False and ack["error"]["code"] == "project_not_found", ack
    status = requests.get(web2 + project_url(team.project_id, "workspace", "status"), headers=team.owner.headers,
                          timeout=10).json()
    assert team.collaborator.id not in [u["user_id"] for u in status["online"]]
