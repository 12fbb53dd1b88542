"""Presence across processes, in-process: dead processes reaped, presence re-asserted after Redis lost it, the
graceful shutdown and its gunicorn hook. (The same paths run for real in tests/test_live_realtime.py.)"""

from __future__ import annotations

import signal
from types import SimpleNamespace

from realtime_inprocess import events, status

from workspace.extensions import redis_store
from workspace.realtime import activity, lifecycle, presence


def joined(sio_connect, user, project_id):
    sio = sio_connect(user)
    assert sio.emit("join", {"project_id": project_id}, callback=True)["ok"] is True
    return sio


def test_a_dead_process_users_drop_out_then_are_reaped_with_user_leave(sio_app, sio_connect, sio_team, sio_http):
    watcher = joined(sio_connect, sio_team.owner, sio_team.project_id)
    rt = sio_app.extensions["realtime"]
    with sio_app.app_context():
        presence.heartbeat("deadproc")  # another process that registered, had a user, then was killed -9
        presence.add(sio_team.project_id, "deadproc", "sid-1", {"id": sio_team.viewer.id, "name": "Viewer"})
        assert {u["user_id"] for u in presence.online(sio_team.project_id)} == {sio_team.owner.id, sio_team.viewer.id}
        redis_store.client.delete(redis_store.key("rt", "proc", "deadproc", "alive"))  # its heartbeat expired
    assert status(sio_http, sio_team.owner, sio_team.project_id)["online_count"] == 1  # listings drop it at once
    watcher.get_received()
    with sio_app.app_context():
        rt.reap()
        rt.reap()  # the process is claimed once: a second pass finds nothing
        assert presence.dead_processes(rt.proc) == []
    leaves = events(watcher, "USER_LEAVE")
    assert [e["user"]["id"] for e in leaves] == [sio_team.viewer.id]


def test_presence_lost_in_redis_is_written_back_by_the_heartbeat(sio_app, sio_connect, sio_team, sio_http):
    watcher = joined(sio_connect, sio_team.owner, sio_team.project_id)
    joined(sio_connect, sio_team.viewer, sio_team.project_id)
    rt = sio_app.extensions["realtime"]
    with sio_app.app_context():
        keys = list(redis_store.client.scan_iter(match=redis_store.key("rt", "*")))
        redis_store.client.delete(*keys)  # what a Redis restart without persistence looks like
    assert status(sio_http, sio_team.owner, sio_team.project_id)["online_count"] == 0
    watcher.get_received()
    with sio_app.app_context():
        rt.tick()
    assert status(sio_http, sio_team.owner, sio_team.project_id)["online_count"] == 2
    assert {e["user"]["id"] for e in events(watcher, "USER_JOIN")} == {sio_team.owner.id, sio_team.viewer.id}


def test_sigterm_hook_clears_presence_closes_sockets_and_refuses_new_ones(sio_app, sio_connect, sio_team, sio_http,
                                                                          monkeypatch):
    joined(sio_connect, sio_team.collaborator, sio_team.project_id)
    rt = sio_app.extensions["realtime"]
    monkeypatch.setattr(rt.server, "start_background_task", lambda fn, *args: fn(*args))  # run the task inline
    exits = []
    cfg = SimpleNamespace(graceful_timeout=20, set=lambda name, value: setattr(cfg, name, value))
    worker = SimpleNamespace(wsgi=sio_app, cfg=cfg, handle_exit=lambda sig, frame: exits.append(sig))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        lifecycle.on_worker_started(worker)
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert exits == [signal.SIGTERM]  # gunicorn's own handling still happens
    assert cfg.graceful_timeout == sio_app.config["SHUTDOWN_DRAIN_SECONDS"]
    # every socket left its rooms (closing the transport is engine.io's part, shown by the live SIGTERM test)
    assert rt.closing and all(not conn.projects for conn in rt.connections.values())
    assert status(sio_http, sio_team.owner, sio_team.project_id)["online_count"] == 0
    with sio_app.app_context():
        assert activity.recent(sio_team.project_id)[0]["event"] == "USER_LEAVE"
        assert redis_store.client.hget(redis_store.key("rt", "procs"), rt.proc) is None
    assert sio_http.get("/socket.io/?EIO=4&transport=polling").status_code == 503
    assert sio_http.get("/healthz").status_code == 200  # only Socket.IO is closed
    assert not sio_connect(sio_team.owner).is_connected()
    rt.shutdown()  # idempotent


def test_redis_outages_become_service_unavailable_not_crashes(sio_app, sio_connect, sio_team, sio_http, monkeypatch):
    import redis

    def down(*_args, **_kwargs):
        raise redis.ConnectionError("Redis is down")

    sio = sio_connect(sio_team.owner)
    monkeypatch.setattr(presence, "add", down)
    ack = sio.emit("join", {"project_id": sio_team.project_id}, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "service_unavailable"
    monkeypatch.setattr(presence, "add", lambda *a: 1 / 0)
    ack = sio.emit("join", {"project_id": sio_team.project_id}, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "internal_error"
    monkeypatch.setattr(presence, "online", down)
    response = sio_http.get(f"/api/v1/projects/{sio_team.project_id}/workspace/status", headers=sio_team.owner.headers)
    assert response.status_code == 503 and response.json["error"]["code"] == "service_unavailable"
    assert sio.is_connected()
