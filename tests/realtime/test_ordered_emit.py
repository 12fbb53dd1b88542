"""Room events: one script takes the seq, keeps the history and publishes python-socketio's own message format;
`join {since_seq}` replays what a client missed, or says `resync` when it is no longer kept."""

from __future__ import annotations

import json
import socket

import redis
import socketio

from workspace.realtime import broadcast, ordered


def test_the_published_envelope_is_python_socketios_own_message_format(app):
    """Fails when python-socketio changes its pub/sub message format: what we publish must be exactly what
    `RedisManager.emit` publishes through `_publish` for the same room event (but for our host id)."""
    channel, url = app.config["SOCKETIO_CHANNEL"], app.config["REDIS_URL"]
    listener = redis.Redis.from_url(url).pubsub()
    listener.subscribe(channel)
    try:
        assert listener.get_message(timeout=5)["type"] == "subscribe"
        with app.app_context():
            sent = broadcast.emit_to_project(7, "FILE_CHANGE", {"path": "a.txt", "version": 2, "content": "x\"y"},
                                             skip_sid="sender-sid")
        published = listener.get_message(timeout=5)
    finally:
        listener.close()
    assert published is not None and published["channel"].decode() == channel
    ours = json.loads(published["data"])

    library = socketio.RedisManager(url, channel=channel, write_only=True)
    captured = []
    library._publish = captured.append
    library.emit("FILE_CHANGE", sent, namespace="/", room=broadcast.project_room(7), skip_sid="sender-sid")
    assert len(captured) == 1
    assert ours == {**json.loads(json.dumps(captured[0])), "host_id": ordered.ORDERED_HOST_ID}
    assert ours["data"] == [sent] and sent["seq"] >= 1 and list(sent)[0] == "seq"


def test_replay_returns_the_missed_room_events_exactly_as_sent_in_seq_order(app):
    with app.app_context():
        first = broadcast.emit_to_project(3, "USER_JOIN", {"user": {"id": 1, "name": "A"}, "at": "t"})
        file_change = broadcast.emit_to_project(3, "FILE_CHANGE", {"path": "p", "version": 1, "content": "é\n"})
        broadcast.emit_to_project(3, "CURSOR_UPDATE", {"path": "p", "line": 1, "column": 2})
        job = broadcast.emit_to_project(3, "JOB_UPDATE", {"job_id": 9, "status": "running", "attempts": 1})
        assert [first["seq"], file_change["seq"], job["seq"]] == [1, 2, 4]
        assert ordered.replay(3, 1) == {"seq": 4, "missed": [{"event": "FILE_CHANGE", "data": file_change},
                                                             {"event": "JOB_UPDATE", "data": job}]}
        assert ordered.replay(3, 0)["missed"][0] == {"event": "USER_JOIN", "data": first}
        assert ordered.replay(3, 4) == {"seq": 4, "missed": []}
        assert ordered.replay(3, 3) == {"seq": 4, "missed": [{"event": "JOB_UPDATE", "data": job}]}
        # Only a cursor move after the last kept event: nothing missed, no resync.
        broadcast.emit_to_project(3, "CURSOR_UPDATE", {"path": "p", "line": 1, "column": 3})
        assert ordered.replay(3, 4) == {"seq": 5, "missed": []}
        # A seq this project never reached (Redis lost the counter since): start over.
        assert ordered.replay(3, 99) == {"seq": 5, "resync": True}


def test_replay_says_resync_once_the_missed_events_are_trimmed_or_expired(make_app):
    app = make_app(REALTIME_HISTORY_EVENTS=10)
    with app.app_context():
        for n in range(250):
            broadcast.emit_to_project(4, "FILE_CHANGE", {"path": "p", "version": n, "content": str(n)})
        assert ordered.replay(4, 1) == {"seq": 250, "resync": True}
        tail = ordered.replay(4, 240)["missed"]
        assert [m["data"]["seq"] for m in tail] == list(range(241, 251))
        from workspace.extensions import redis_store

        redis_store.client.delete(redis_store.key("rt", "history", 4))  # what the TTL does to an idle project
        assert ordered.replay(4, 240) == {"seq": 250, "resync": True}
        assert ordered.replay(4, 250) == {"seq": 250, "missed": []}


def test_one_round_trip_per_room_event_and_the_status_and_metrics_still_see_it(app, monkeypatch):
    from workspace.extensions import redis_store
    from workspace.observability import metrics
    from workspace.realtime import activity

    with app.app_context():
        calls = []
        client = redis_store.client
        original = client.execute_command
        monkeypatch.setattr(client, "execute_command", lambda *a, **k: calls.append(a[0]) or original(*a, **k))
        broadcast.emit_to_project(5, "FILE_CHANGE", {"path": "p", "version": 1, "content": "c", "at": "then"})
        broadcast.emit_to_project(5, "CURSOR_UPDATE", {"path": "p", "line": 1, "column": 1})
        assert calls == ["EVALSHA", "EVALSHA"]
        monkeypatch.undo()
        assert activity.recent(5) == [{"event": "FILE_CHANGE", "seq": 1, "at": "then", "path": "p", "version": 1}]
        assert activity.last_activity_at(5) == "then"
        key, _ = metrics.emitted_counter("FILE_CHANGE")
        assert client.hgetall(key) == {"FILE_CHANGE": "1", "CURSOR_UPDATE": "1"}


def test_the_queue_manager_counts_lost_publishes_and_announces_resubscriptions(app):
    """What python-socketio only logs, co-editing needs to know (realtime.coedit): a message given up on, and a
    subscription made again (messages published meanwhile never arrive)."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    down = ordered.OrderedRedisManager(f"redis://127.0.0.1:{dead}/0", channel="c", write_only=True)
    assert down._publish({"method": "emit"}) is None and down.lost_publishes == 1
    up = ordered.OrderedRedisManager(app.config["REDIS_URL"], channel=app.config["SOCKETIO_CHANNEL"] + "-probe",
                                     write_only=True)
    assert up._publish({"method": "emit"}) == 0 and up.lost_publishes == 0
    assert up.pubsub.ignore_subscribe_messages is False  # its listener sees each subscription confirmed
    told = []
    up.on_resubscribed.append(lambda: told.append(len(received)))
    c = up.channel.encode()
    stream = [{"type": "subscribe", "channel": c}, {"type": "message", "channel": c, "data": "1"},
              {"type": "message", "channel": b"other", "data": "x"}, {"type": "subscribe", "channel": c},
              {"type": "message", "channel": c, "data": "2"}]
    up._redis_listen_with_retries = lambda: iter(stream)
    received = []
    for data in up._listen():
        received.append(data)
    assert received == ["1", "2"] and told == [1]  # the first subscription is no re-subscription
