"""Peer (b) of the fan-out benchmark: the minimal Flask-SocketIO relay, through the same Redis message queue and
under the same gunicorn worker class as the product (`gunicorn -k eventlet|gevent relay_app:app`, see
bench/realtime.py). It does what a Flask-SocketIO tutorial does: join a room, emit CURSOR_UPDATE to the room but
the sender with a per-process seq, ack the sender. No auth, no persistence. Like the product, it refuses
permessage-deflate (PITFALLS: websocket compression), so the comparison measures the framework, not zlib.
Environment: BENCH_REDIS_URL, BENCH_CHANNEL, BENCH_ASYNC_MODE (eventlet or gevent: left to auto-detect,
Flask-SocketIO would pick eventlet, installed, under the gevent worker).
"""

from __future__ import annotations

import itertools
import os

from flask import Flask, request
from flask_socketio import SocketIO, emit, join_room

app = Flask(__name__)
socketio = SocketIO(app, message_queue=os.environ["BENCH_REDIS_URL"], channel=os.environ["BENCH_CHANNEL"],
                    async_mode=os.environ["BENCH_ASYNC_MODE"],
                    cors_allowed_origins="*")
_seq = itertools.count(1)


@socketio.on("join")
def on_join(payload):
    join_room(f"project:{payload['project_id']}")
    return {"ok": True, "presence": [], "seq": 0}


@socketio.on("CURSOR_UPDATE")
def on_cursor(payload):
    seq = next(_seq)
    emit("CURSOR_UPDATE", {**payload, "user": {"id": 1, "name": "bench"}, "seq": seq},
         to=f"project:{payload['project_id']}", skip_sid=request.sid)
    return {"ok": True, "seq": seq}


def _strip_deflate(wsgi_app):
    def middleware(environ, start_response):
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return wsgi_app(environ, start_response)

    return middleware


app.wsgi_app = _strip_deflate(app.wsgi_app)
