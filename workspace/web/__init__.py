"""The web client: one static page at /app that uses only the public REST + Socket.IO contract.

Everything is served from this package (no CDN): `static/index.html`, the ES modules under `static/js/`,
`static/app.css`, the socket.io-client browser bundle vendored under `static/vendor/` (its version is in the folder
name) and the co-editor bundle `static/dist/editor.js` (CodeMirror 6 + yjs + y-codemirror.next + y-socket.io, built
from `js/editor/` by `make bundle` and committed, so serving needs no Node). Responses revalidate with an ETag, so a
deploy is picked up at once.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory

STATIC = Path(__file__).resolve().parent / "static"
SOCKETIO_CLIENT_VERSION = "4.8.4"

bp = Blueprint("web", __name__)


@bp.route("/app")
@bp.route("/app/")
def page():
    """The single page; everything else is routed inside it."""
    return _send("index.html")


@bp.route("/app/static/<path:filename>")
def asset(filename: str):
    return _send(filename)


def _send(filename: str):
    # max_age=0 + ETag: browsers revalidate cheaply (304) and never run a stale client against a newer API.
    response = send_from_directory(STATIC, filename, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response
