"""Idle websockets with one green thread each (workspace/realtime/idle_sockets.py), under gunicorn exactly as the
Procfile runs it, with both worker classes: a client that answers is pinged every SOCKET_PING_INTERVAL_SECONDS and
kept; one that stops answering is dropped once SOCKET_PING_TIMEOUT_SECONDS has passed since the unanswered ping; what
the server sends after its writer task ended for idleness still arrives, in order."""

from __future__ import annotations

import json
import time

import pytest
import requests
import websocket

from processes import start_web
from workspace.realtime.idle_sockets import WRITER_LINGER

INTERVAL, TIMEOUT = 1, 1


@pytest.fixture(params=["eventlet", "gevent"])
def web(request, live_env, processes):
    proc, base = start_web({**live_env, "SOCKET_PING_INTERVAL_SECONDS": str(INTERVAL),
                            "SOCKET_PING_TIMEOUT_SECONDS": str(TIMEOUT), "SOCKET_CONNECT_TIMEOUT_SECONDS": "60"},
                           async_mode=request.param)
    processes.append(proc)
    return base


def next_packet(ws: websocket.WebSocket) -> tuple[float, str | None]:
    """(arrival time, Engine.IO packet) of the next message; None once the connection is closed."""
    try:
        opcode, frame = ws.recv_data_frame(control_frame=True)
    except (websocket.WebSocketConnectionClosedException, ConnectionResetError):
        return time.monotonic(), None
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        return time.monotonic(), None
    return time.monotonic(), frame.data.decode()


@pytest.mark.live
def test_an_answering_client_is_pinged_every_interval_and_a_silent_one_dropped_after_the_timeout(web):
    ws = websocket.create_connection(web.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket", timeout=10)
    opened_at, opened = next_packet(ws)
    assert opened.startswith("0") and json.loads(opened[1:])["pingInterval"] == INTERVAL * 1000
    pinged = []
    while len(pinged) < 3:
        at, pkt = next_packet(ws)
        assert pkt == "2", pkt  # nothing but pings on an idle Engine.IO session
        pinged.append(at)
        ws.send("3")
    # One interval after the handshake, then one after each answer (the answer goes out at once).
    gaps = [b - a for a, b in zip([opened_at, *pinged], pinged, strict=False)]
    assert all(INTERVAL * 0.8 <= gap <= INTERVAL + 0.5 for gap in gaps), gaps
    # Silence: the next ping goes unanswered and the server closes the socket after the timeout (its service task
    # checks each socket about once per timeout, so allow that much again, and a little).
    at, pkt = next_packet(ws)
    assert pkt == "2"
    while pkt is not None:
        closed_at, pkt = next_packet(ws)
        assert pkt in (None, "1"), pkt  # Engine.IO CLOSE, then the end of the connection
    assert TIMEOUT * 0.9 <= closed_at - at <= 2 * TIMEOUT + 1.5, closed_at - at
    assert requests.get(web + "/healthz", timeout=5).status_code == 200


@pytest.mark.live
@pytest.mark.parametrize("async_mode", ["eventlet", "gevent"])
def test_packets_sent_after_the_writer_ended_for_idleness_arrive_in_order(async_mode, live_env, processes):
    proc, base = start_web({**live_env, "SOCKET_CONNECT_TIMEOUT_SECONDS": "60"}, async_mode=async_mode)
    processes.append(proc)
    ws = websocket.create_connection(base.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket", timeout=10)
    assert next_packet(ws)[1].startswith("0")
    for _ in range(3):
        time.sleep(WRITER_LINGER + 0.5)  # the writer task has ended: the answer below needs a new one
        for namespace in ("", "/nope,"):  # two packets queued at once, each answered with a CONNECT_ERROR
            ws.send(f"40{namespace}")
        answers = [next_packet(ws)[1], next_packet(ws)[1]]
        assert answers[0].startswith("44{") and answers[1].startswith("44/nope,"), answers
    ws.close()
    assert requests.get(base + "/healthz", timeout=5).status_code == 200
