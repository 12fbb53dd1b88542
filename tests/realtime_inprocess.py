"""Fixtures for in-process socket tests with Flask-SocketIO's test client.

The test client cannot run with a message queue and drives the server of the most recently created app, so the
socket app is built last and without a queue (presence, seq and revocation still use the real Redis).
"""

from __future__ import annotations

import pytest
from teams import make_team, project_url

from workspace.extensions import socketio


@pytest.fixture
def sio_app(make_user, make_app):
    make_user()  # builds the default app first, so the socket app below is the latest
    return make_app(SOCKETIO_MESSAGE_QUEUE=None, CURSOR_RATE_PER_SECOND=5, SOCKET_EVENT_RATE_PER_SECOND=50)


@pytest.fixture
def sio_http(sio_app):
    return sio_app.test_client()


@pytest.fixture
def sio_team(sio_http, make_user):
    return make_team(sio_http, make_user)


@pytest.fixture
def sio_connect(sio_app):
    clients = []

    def factory(user=None, auth=None):
        sio = socketio.test_client(sio_app, auth=auth if auth is not None else {"token": user.access})
        clients.append(sio)
        return sio

    yield factory
    for sio in clients:
        if sio.is_connected():
            sio.disconnect()


def events(sio, name):
    return [e["args"][0] for e in sio.get_received() if e["name"] == name]


def status(sio_http, user, project_id):
    response = sio_http.get(project_url(project_id, "workspace", "status"), headers=user.headers)
    assert response.status_code == 200, response.json
    return response.json


