"""Incoming websocket messages are capped before they are buffered, under gunicorn's eventlet and gevent workers (the
Procfile's web command): a message split into many small fragments is refused once it passes the limit, like one big
frame, and the connection is closed with 1009 while the process keeps serving everyone else."""

from __future__ import annotations

import pytest
import requests
import websocket

from processes import start_web

LIMIT = 64 * 1024


@pytest.fixture(params=["eventlet", "gevent"])  # gevent: the cap of realtime/idle_sockets.py's InlineWebSocket
def web(request, live_env, processes):
    proc, base = start_web({**live_env, "MAX_FILE_BYTES": str(LIMIT // 3), "MAX_CONTENT_LENGTH": str(LIMIT)},
                           async_mode=request.param)
    processes.append(proc)
    return base


def engineio_socket(base: str) -> websocket.WebSocket:
    ws = websocket.create_connection(base.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
                                     timeout=10)
    assert ws.recv().startswith("0{")  # the Engine.IO OPEN packet
    return ws


def closed_with(ws: websocket.WebSocket) -> int | None:
    """Read until the server's close frame; its status code."""
    while True:
        opcode, frame = ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big")


@pytest.mark.live
def test_many_fragments_past_the_limit_close_the_connection(web):
    ws = engineio_socket(web)
    piece = b"x" * 4096
    ws.send_frame(websocket.ABNF.create_frame(piece, websocket.ABNF.OPCODE_BINARY, fin=0))
    try:  # the server refuses the fragment that passes the limit at its header and closes with its payload unread,
        # so the client may see the reset (RST) before the close frame: either way the connection is closed
        for _ in range(LIMIT // len(piece)):
            ws.send_frame(websocket.ABNF.create_frame(piece, websocket.ABNF.OPCODE_CONT, fin=0))
        assert closed_with(ws) == 1009
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert requests.get(web + "/healthz", timeout=5).status_code == 200


@pytest.mark.live
def test_one_frame_past_the_limit_closes_and_a_message_under_it_is_read(web):
    big = engineio_socket(web)
    try:  # the server closes after reading the frame's header, so the rest of the frame may not go out
        big.send_binary(b"x" * (LIMIT + 1))
        assert closed_with(big) == 1009
    except (BrokenPipeError, ConnectionResetError):
        pass
    fine = engineio_socket(web)
    fine.send("40")  # a Socket.IO CONNECT without a token: answered with CONNECT_ERROR, so the socket is served
    assert fine.recv().startswith("44")
    fine.close()
