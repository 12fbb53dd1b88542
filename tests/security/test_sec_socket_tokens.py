"""Attack: keep using a socket after its token stopped working (issue 10, "Open sockets ignore the token's lifecycle").

Before the fix a socket's token was checked at connect only: after logout, after refresh-token re-use revoked the
whole family, or after the access token expired, the open socket still joined projects and saved files. Each test
replays one of those against two live gunicorn web processes on PostgreSQL and Redis.
"""

from __future__ import annotations

import pytest
import redis
import requests
from realtime_live import NodeClient, wait_until
from socket_attacks import access_token, webs

from services import REDIS_URL

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("stop_webs_together")]

REVOKED = "SESSION_REVOKED"



def connected(client):
    item = client.wait_connected()
    assert item["type"] == "connect", item
    return client


def joins(client, project_id) -> dict:
    return client.emit("join", {"project_id": project_id})


def cut_off(client, reason: str) -> None:
    """The server said why, then disconnected the socket itself (so the client does not reconnect)."""
    assert client.wait_event(REVOKED) == {"reason": reason}
    gone = client.inbox.wait(lambda i: i["type"] == "disconnect", what=f"{client.name} disconnected")
    assert gone["reason"] == "io server disconnect", gone


def login(base: str, user) -> dict:
    response = requests.post(base + "/api/v1/auth/login", json={"email": user.email, "password": user.password},
                             timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_logout_disconnects_every_socket_of_that_token_on_every_process(live_env, processes, team, clients):
    (_, web1), (_, web2) = webs(live_env, processes)
    user = team.collaborator
    other_login = login(web1, user)["access_token"]  # the same user signed in elsewhere: a different token
    here = connected(NodeClient(web1, user.access, "token@web1"))
    there = connected(NodeClient(web2, user.access, "token@web2"))
    elsewhere = connected(NodeClient(web2, other_login, "other-login@web2"))
    clients += [here, there, elsewhere]
    for socket in (here, there, elsewhere):
        assert joins(socket, team.project_id)["ok"] is True

    response = requests.post(web1 + "/api/v1/auth/logout", headers=user.headers, timeout=10)
    assert response.status_code == 204, response.text

    cut_off(here, "logout")
    cut_off(there, "logout")
    # the other login's socket is not this token's: it stays, and keeps working
    assert elsewhere.emit("CURSOR_UPDATE", {"project_id": team.project_id, "path": "a", "line": 1,
                                            "column": 1})["ok"] is True
    assert elsewhere.received(REVOKED) == []
    # and the revoked token cannot come back
    again = NodeClient(web2, user.access, "revoked again")
    clients.append(again)
    assert again.wait_connected()["data"] == {"code": "token_revoked"}


def test_refresh_token_reuse_disconnects_the_whole_family(live_env, processes, team, clients):
    (_, web1), (_, web2) = webs(live_env, processes)
    user = team.viewer
    first = login(web1, user)
    rotated = requests.post(web1 + "/api/v1/auth/refresh",
                            headers={"Authorization": f"Bearer {first['refresh_token']}"}, timeout=10)
    assert rotated.status_code == 200, rotated.text
    old_access = connected(NodeClient(web1, first["access_token"], "first-access@web1"))
    new_access = connected(NodeClient(web2, rotated.json()["access_token"], "rotated-access@web2"))
    clients += [old_access, new_access]
    for socket in (old_access, new_access):
        assert joins(socket, team.project_id)["ok"] is True

    # someone replays the spent refresh token: the whole family is revoked (REST answers 401)
    replay = requests.post(web2 + "/api/v1/auth/refresh",
                           headers={"Authorization": f"Bearer {first['refresh_token']}"}, timeout=10)
    assert replay.status_code == 401, replay.text

    cut_off(old_access, "refresh_token_reused")
    cut_off(new_access, "refresh_token_reused")


def test_an_expired_token_is_refused_then_cut_off_unless_a_fresh_one_is_handed_over(
        live_env, processes, team, clients, app):
    (_, web1), _ = webs(live_env, processes, SOCKET_TOKEN_GRACE_SECONDS="3")
    user = team.collaborator
    stale = connected(NodeClient(web1, access_token(app, user, seconds=5), "expiring"))
    renewed = connected(NodeClient(web1, access_token(app, user, seconds=5), "renewing"))
    clients += [stale, renewed]
    change = {"project_id": team.project_id, "path": "notes.txt", "content": "written in time"}
    assert stale.emit("FILE_CHANGE", change)["ok"] is True

    def refused():  # probing with an event that changes nothing
        ack = stale.emit("leave", {"project_id": team.project_id})
        return ack if not ack["ok"] else None

    ack = wait_until(refused, timeout=15, interval=0.2, what="events refused once the token expired")
    assert ack["error"]["code"] == "token_expired", ack
    late = stale.emit("FILE_CHANGE", {**change, "content": "written too late"})
    assert late["ok"] is False and late["error"]["code"] == "token_expired", late
    assert joins(stale, team.project_id)["error"]["code"] == "token_expired"

    # the other socket hands over a fresh token: refused for someone else's, accepted for its own user's
    wait_until(lambda: not renewed.emit("leave", {"project_id": team.project_id})["ok"], timeout=15, interval=0.2,
               what="the second token expired too")
    foreign = renewed.emit("auth", {"token": team.owner.access})
    assert foreign["ok"] is False and foreign["error"]["code"] == "wrong_user", foreign
    assert renewed.emit("auth", {"token": "not-a-token"})["error"]["code"] == "invalid_token"
    handed = renewed.emit("auth", {"token": user.access})
    assert handed["ok"] is True and handed["expires_at"], handed

    cut_off(stale, "token_expired")
    # the stale socket is gone after the grace period; the renewed one (same expiry, same process) still works
    assert joins(renewed, team.project_id)["ok"] is True
    assert renewed.received(REVOKED) == []
    files = requests.get(web1 + f"/api/v1/projects/{team.project_id}/files/notes.txt", headers=user.headers,
                         timeout=10).json()
    assert files["content"] == "written in time"


def test_a_connect_racing_a_logout_is_refused(live_env, processes, team, clients, redis_prefix):
    """The token is verified, then (parked at a failpoint) its owner logs out on the other process: the connect
    must not come through with a token that no longer works, nor escape the logout's disconnect."""
    (_, web1), (_, web2) = webs(live_env, processes, FAILPOINTS="connect.after_verify")
    store = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    racing = NodeClient(web1, team.viewer.access, "racing")
    clients.append(racing)
    assert store.blpop([f"{redis_prefix}failpoint:connect.after_verify:reached"], timeout=15), "connect not parked"
    response = requests.post(web2 + "/api/v1/auth/logout", headers=team.viewer.headers, timeout=10)
    assert response.status_code == 204, response.text
    store.rpush(f"{redis_prefix}failpoint:connect.after_verify:release", "go")
    refused = racing.wait_connected()
    assert refused["type"] == "connect_error" and refused["data"] == {"code": "token_revoked"}, refused
