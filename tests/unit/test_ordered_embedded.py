"""Embedded mode (no Redis server): fakeredis runs the same Lua script (lupa), so room events get their seq and
history, and `join {since_seq}` replays, exactly as with Redis."""

from __future__ import annotations

import random

from workspace.realtime import broadcast, ordered


def test_embedded_mode_takes_seqs_and_replays_without_a_redis_server(app):
    project = random.randrange(10**6, 10**9)  # the in-process Redis stand-in is shared by every app of the process
    with app.app_context():
        sent = [broadcast.emit_to_project(project, "FILE_CHANGE", {"path": "p", "version": n, "content": str(n)})
                for n in range(3)]
        assert [m["seq"] for m in sent] == [1, 2, 3]
        assert ordered.replay(project, 1) == {"seq": 3, "missed": [{"event": "FILE_CHANGE", "data": sent[1]},
                                                                   {"event": "FILE_CHANGE", "data": sent[2]}]}
        assert ordered.replay(project, 7) == {"seq": 3, "resync": True}
