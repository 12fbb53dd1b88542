"""Fixtures shared by the live tier's realtime tests: the Socket.IO clients a test opens, and a project team."""

from __future__ import annotations

import pytest
from realtime_live import close_all
from teams import make_team


@pytest.fixture
def clients():
    """Socket.IO clients a test opened (node or python); all closed when it ends."""
    opened = []
    yield opened
    close_all(opened)


@pytest.fixture
def team(client, make_user):
    """An owner, a collaborator and a viewer on one project (tests/teams.py)."""
    return make_team(client, make_user)
