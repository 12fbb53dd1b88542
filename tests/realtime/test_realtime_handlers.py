"""Socket event handlers, driven in-process with Flask-SocketIO's test client.

The test client cannot run with a message queue and drives the server of the most recently created app, so the
socket app here is built last and without a queue (presence, seq and revocation still use the real Redis).
"""

from __future__ import annotations

import pytest
from realtime_inprocess import events, status
from teams import create_project, project_url


# --- sio_connect ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("auth", [None, {}, {"token": ""}, {"token": 42}, "not a dict"])
def test_connect_without_a_token_is_refused(sio_connect, auth):
    sio = sio_connect(auth=auth if auth is not None else {})
    assert not sio.is_connected()


def test_connect_with_forged_expired_refresh_or_revoked_token_is_refused(sio_connect, make_user, sio_app, sio_http):
    from flask_jwt_extended import create_access_token

    user = make_user()
    with sio_app.app_context():
        forged = user.access[:-4] + ("AAAA" if not user.access.endswith("AAAA") else "BBBB")
        expired = create_access_token(identity=str(user.id), expires_delta=-__import__("datetime").timedelta(1))
    for token in (forged, expired, user.refresh, "garbage"):
        assert not sio_connect(auth={"token": token}).is_connected()
    assert sio_connect(user).is_connected()
    assert sio_http.post("/api/v1/auth/logout", headers=user.headers).status_code == 204
    assert not sio_connect(user).is_connected()


def test_refusal_messages_say_why(sio_app, make_user):
    """The connect_error payload (what socket.io-client shows as err.message) names the reason."""
    from socketio.exceptions import ConnectionRefusedError as Refused

    from workspace.realtime import connection

    with sio_app.test_request_context(), pytest.raises(Refused) as missing:
        sio_app.extensions["realtime"].closing = False
        connection.on_connect({})
    assert "missing" in missing.value.error_args["message"]
    assert missing.value.error_args["data"] == {"code": "token_missing"}
    with sio_app.test_request_context(), pytest.raises(Refused) as forged:
        connection.on_connect({"token": "a.b.c"})
    assert "forged" in forged.value.error_args["message"]


# --- join / leave / presence -----------------------------------------------------------------------------------
def test_join_acks_presence_and_seq_and_the_room_sees_user_join(sio_connect, sio_team, sio_http):
    owner, viewer = sio_connect(sio_team.owner), sio_connect(sio_team.viewer)
    first = owner.emit("join", {"project_id": sio_team.project_id}, callback=True)
    assert first["ok"] is True and first["role"] == "owner"
    assert [u["user_id"] for u in first["presence"]] == [sio_team.owner.id]
    second = viewer.emit("join", {"project_id": sio_team.project_id}, callback=True)
    assert second["ok"] is True
    assert {u["user_id"] for u in second["presence"]} == {sio_team.owner.id, sio_team.viewer.id}
    assert second["seq"] > first["seq"] - 1
    joins = events(owner, "USER_JOIN")
    assert joins == [{"project_id": sio_team.project_id, "user": {"id": sio_team.viewer.id, "name": "Viewer"},
                      "at": joins[0]["at"], "seq": second["seq"]}]
    assert events(viewer, "USER_JOIN") == []  # the joiner learns presence from its ack
    body = status(sio_http, sio_team.viewer, sio_team.project_id)
    assert body["online_count"] == 2 and {u["name"] for u in body["online"]} == {"Owner", "Viewer"}
    assert body["recent_events"][0]["event"] == "USER_JOIN" and body["last_activity_at"]


def test_two_tabs_appear_once_and_leave_with_the_last(sio_connect, sio_team, sio_http):
    watcher = sio_connect(sio_team.owner)
    watcher.emit("join", {"project_id": sio_team.project_id}, callback=True)
    tab1, tab2 = sio_connect(sio_team.collaborator), sio_connect(sio_team.collaborator)
    tab1.emit("join", {"project_id": sio_team.project_id}, callback=True)
    ack = tab2.emit("join", {"project_id": sio_team.project_id}, callback=True)
    assert [u["user_id"] for u in ack["presence"]].count(sio_team.collaborator.id) == 1
    assert len(events(watcher, "USER_JOIN")) == 1
    assert tab1.emit("leave", {"project_id": sio_team.project_id}, callback=True)["ok"] is True
    assert events(watcher, "USER_LEAVE") == []
    assert status(sio_http, sio_team.owner, sio_team.project_id)["online_count"] == 2
    tab2.disconnect()
    leaves = events(watcher, "USER_LEAVE")
    assert [e["user"]["id"] for e in leaves] == [sio_team.collaborator.id]
    assert status(sio_http, sio_team.owner, sio_team.project_id)["online_count"] == 1


def test_non_members_cannot_join_and_unknown_projects_look_the_same(sio_connect, sio_team):
    outsider = sio_connect(sio_team.other)
    for project_id in (sio_team.project_id, 999999):
        ack = outsider.emit("join", {"project_id": project_id}, callback=True)
        assert ack == {"ok": False, "error": {"code": "project_not_found", "message": "Project not found."}}
    assert outsider.is_connected()


@pytest.mark.parametrize("payload", [None, "5", [], {}, {"project_id": "1"}, {"project_id": True},
                                     {"project_id": -3}, {"project_id": 1.5}])
def test_malformed_join_gets_an_error_ack(sio_connect, sio_team, payload):
    sio = sio_connect(sio_team.owner)
    ack = sio.emit("join", payload, callback=True) if payload is not None else sio.emit("join", callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload"
    assert sio.emit("join", {"project_id": sio_team.project_id}, callback=True)["ok"] is True


# --- FILE_CHANGE -----------------------------------------------------------------------------------------------
def test_file_change_persists_versions_and_reaches_the_room_not_the_sender(sio_connect, sio_team, sio_http):
    editor, watcher = sio_connect(sio_team.collaborator), sio_connect(sio_team.viewer)
    for sio in (editor, watcher):
        sio.emit("join", {"project_id": sio_team.project_id}, callback=True)
    watcher.get_received()
    ack = editor.emit("FILE_CHANGE", {"project_id": sio_team.project_id, "path": "src/a.py", "content": "x = 1\n"},
                      callback=True)
    assert ack == {"ok": True, "project_id": sio_team.project_id, "path": "src/a.py", "version": 1, "created": True}
    change = events(watcher, "FILE_CHANGE")[0]
    assert (change["content"], change["version"], change["user"]["id"]) == ("x = 1\n", 1, sio_team.collaborator.id)
    assert isinstance(change["seq"], int)
    assert events(editor, "FILE_CHANGE") == []
    stale = editor.emit("FILE_CHANGE", {"project_id": sio_team.project_id, "path": "src/a.py", "content": "y",
                                        "base_version": 0}, callback=True)
    assert stale["ok"] is False and stale["error"]["code"] == "conflict" and stale["current_version"] == 1
    ok = editor.emit("FILE_CHANGE", {"project_id": sio_team.project_id, "path": "src/a.py", "content": "y",
                                     "base_version": 1}, callback=True)
    assert ok["version"] == 2
    got = sio_http.get(project_url(sio_team.project_id, "files", "src/a.py"), headers=sio_team.viewer.headers).json
    assert got["content"] == "y" and got["version"] == 2
    assert status(sio_http, sio_team.viewer, sio_team.project_id)["file_count"] == 1


def test_viewers_and_outsiders_cannot_change_files(sio_connect, sio_team, sio_http):
    viewer, outsider = sio_connect(sio_team.viewer), sio_connect(sio_team.other)
    payload = {"project_id": sio_team.project_id, "path": "a.txt", "content": "nope"}
    assert viewer.emit("FILE_CHANGE", payload, callback=True)["error"]["code"] == "forbidden"
    assert outsider.emit("FILE_CHANGE", payload, callback=True)["error"]["code"] == "project_not_found"
    assert sio_http.get(project_url(sio_team.project_id, "files"), headers=sio_team.owner.headers).json["items"] == []


@pytest.mark.parametrize("change", [
    {"path": "../etc/passwd", "content": "x"}, {"path": "a.txt", "content": 5}, {"path": 3, "content": "x"},
    {"path": "a.txt"}, {"path": "a.txt", "content": "x", "base_version": "1"},
    {"path": "a.txt", "content": "x" * (1024 * 1024 + 1)},
])
def test_bad_file_changes_get_error_acks_and_persist_nothing(sio_connect, sio_team, sio_http, change):
    sio = sio_connect(sio_team.owner)
    ack = sio.emit("FILE_CHANGE", {"project_id": sio_team.project_id, **change}, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] in {"invalid_payload", "invalid_path", "file_too_large"}
    assert sio_http.get(project_url(sio_team.project_id, "files"), headers=sio_team.owner.headers).json["items"] == []
    assert sio.emit("join", {"project_id": sio_team.project_id}, callback=True)["ok"] is True


def test_a_downgrade_to_viewer_applies_to_the_next_event(sio_connect, sio_team, sio_http):
    editor = sio_connect(sio_team.collaborator)
    payload = {"project_id": sio_team.project_id, "path": "a.txt", "content": "1"}
    assert editor.emit("FILE_CHANGE", payload, callback=True)["ok"] is True
    response = sio_http.patch(project_url(sio_team.project_id, "collaborators", sio_team.collaborator.id),
                          json={"role": "viewer"}, headers=sio_team.owner.headers)
    assert response.status_code == 200
    assert events(editor, "MEMBERSHIP_CHANGED") == [{"project_id": sio_team.project_id, "role": "viewer"}]
    assert editor.emit("FILE_CHANGE", payload, callback=True)["error"]["code"] == "forbidden"


# --- CURSOR_UPDATE ---------------------------------------------------------------------------------------------
def test_cursor_updates_reach_the_room_with_seq_and_require_join(sio_connect, sio_team):
    viewer, watcher = sio_connect(sio_team.viewer), sio_connect(sio_team.owner)
    cursor = {"project_id": sio_team.project_id, "path": "a.txt", "line": 3, "column": 7}
    assert viewer.emit("CURSOR_UPDATE", cursor, callback=True)["error"]["code"] == "not_joined"
    for sio in (viewer, watcher):
        sio.emit("join", {"project_id": sio_team.project_id}, callback=True)
    ack = viewer.emit("CURSOR_UPDATE", cursor, callback=True)
    assert ack["ok"] is True
    got = events(watcher, "CURSOR_UPDATE")
    assert got == [{**cursor, "user": {"id": sio_team.viewer.id, "name": "Viewer"}, "seq": ack["seq"]}]
    assert events(viewer, "CURSOR_UPDATE") == []


@pytest.mark.parametrize("bad", [{"line": -1}, {"line": "3"}, {"column": None}, {"path": None}, {"line": True}])
def test_malformed_cursor_updates_get_error_acks(sio_connect, sio_team, bad):
    sio = sio_connect(sio_team.owner)
    sio.emit("join", {"project_id": sio_team.project_id}, callback=True)
    cursor = {"project_id": sio_team.project_id, "path": "a.txt", "line": 3, "column": 7, **bad}
    assert sio.emit("CURSOR_UPDATE", cursor, callback=True)["error"]["code"] == "invalid_payload"


def test_a_cursor_flood_is_coalesced_to_the_latest_position(sio_app, sio_connect, sio_team, monkeypatch):
    import time

    rt = sio_app.extensions["realtime"]
    flushes = []  # the flush task is run by hand below: deterministic, no waiting on a timer
    monkeypatch.setattr(rt.server, "start_background_task", lambda fn, *args: flushes.append((fn, args)))
    monkeypatch.setattr(rt.server, "sleep", lambda seconds: None)
    sender, watcher = sio_connect(sio_team.owner), sio_connect(sio_team.viewer)
    for sio in (sender, watcher):
        sio.emit("join", {"project_id": sio_team.project_id}, callback=True)
    started = time.monotonic()
    acks = [sender.emit("CURSOR_UPDATE", {"project_id": sio_team.project_id, "path": "a", "line": n, "column": 0},
                        callback=True) for n in range(200)]
    allowed = 5 + 5 * (time.monotonic() - started) + 1  # burst + CURSOR_RATE_PER_SECOND=5 over the flood's duration
    assert all(a["ok"] for a in acks)
    relayed = [a for a in acks if "seq" in a]
    assert len(relayed) <= allowed and len(relayed) + sum(1 for a in acks if a.get("coalesced")) == 200
    flushes = [(fn, args) for fn, args in flushes if fn.__name__ == "_flush_cursor"]  # not the heartbeat loop
    assert len(flushes) == 1  # one held payload and one task per socket, however long the flood
    fn, args = flushes[0]
    fn(*args)
    lines = [e["args"][0]["line"] for e in watcher.queue if e["name"] == "CURSOR_UPDATE"]
    assert lines[-1] == 199 and len(lines) == len(relayed) + 1
    assert sender.emit("join", {"project_id": sio_team.project_id}, callback=True)["ok"] is True


def test_an_event_flood_gets_rate_limited_acks_and_the_socket_survives(sio_connect, sio_team):
    sio = sio_connect(sio_team.owner)
    acks = [sio.emit("leave", {"project_id": sio_team.project_id}, callback=True) for _ in range(300)]
    limited = [a for a in acks if not a["ok"]]
    assert limited and all(a["error"]["code"] == "rate_limited" for a in limited)
    assert sio.is_connected()


# --- membership ------------------------------------------------------------------------------------------------
def test_removal_evicts_the_sockets_and_tells_the_user(sio_connect, sio_team, sio_http):
    removed, watcher = sio_connect(sio_team.collaborator), sio_connect(sio_team.owner)
    for sio in (removed, watcher):
        sio.emit("join", {"project_id": sio_team.project_id}, callback=True)
    removed.get_received()
    watcher.get_received()
    response = sio_http.delete(project_url(sio_team.project_id, "collaborators", sio_team.collaborator.id),
                           headers=sio_team.owner.headers)
    assert response.status_code == 204
    assert events(removed, "MEMBERSHIP_CHANGED") == [{"project_id": sio_team.project_id, "role": None}]
    assert [e["user"]["id"] for e in events(watcher, "USER_LEAVE")] == [sio_team.collaborator.id]
    watcher.emit("CURSOR_UPDATE", {"project_id": sio_team.project_id, "path": "a", "line": 1, "column": 1})
    assert events(removed, "CURSOR_UPDATE") == []
    cursor = {"project_id": sio_team.project_id, "path": "a", "line": 1, "column": 1}
    assert removed.emit("CURSOR_UPDATE", cursor, callback=True)["error"]["code"] == "not_joined"
    assert status(sio_http, sio_team.owner, sio_team.project_id)["online_count"] == 1


def test_project_deletion_evicts_everyone(sio_connect, sio_team, sio_http, make_user):
    owner, viewer = sio_connect(sio_team.owner), sio_connect(sio_team.viewer)
    for sio in (owner, viewer):
        sio.emit("join", {"project_id": sio_team.project_id}, callback=True)
    viewer.get_received()
    assert sio_http.delete(project_url(sio_team.project_id), headers=sio_team.owner.headers).status_code == 204
    assert {"project_id": sio_team.project_id, "role": None} in events(viewer, "MEMBERSHIP_CHANGED")


def test_status_is_for_members_only(sio_http, sio_team, make_user):
    url = project_url(sio_team.project_id, "workspace", "status")
    assert sio_http.get(url, headers=sio_team.other.headers).status_code == 404
    assert sio_http.get(url).status_code == 401
    other_project = create_project(sio_http, sio_team.other, "Other")["id"]
    body = status(sio_http, sio_team.other, other_project)
    assert body == {"project_id": other_project, "online": [], "online_count": 0, "file_count": 0,
                    "last_activity_at": None, "recent_events": []}
