"""The unit tier runs with no services: its `app` is the embedded mode (SQLite in a temporary folder, in-process
Redis stand-in), so `make check` works on a machine without PostgreSQL or Redis."""

from __future__ import annotations

import pytest
from flask import Flask

from workspace import create_app
from workspace.extensions import db


@pytest.fixture
def app(tmp_path) -> Flask:
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'unit.db'}",
        "REDIS_URL": None,
        "SOCKETIO_MESSAGE_QUEUE": None,
    })
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()
