"""workspace.redis_readiness: redis-py's zero-timeout readiness check answered by the real poll, the same answers."""

import select
import socket

import pytest
from redis._parsers import hiredis

from workspace import redis_readiness


@pytest.fixture
def installed(monkeypatch):
    """Installed over redis-py's own check, with a real poll that counts its uses; undone after the test."""
    green = hiredis._socket_can_read
    monkeypatch.setattr(hiredis, "_socket_can_read", green)
    polls = []

    def counting_poll():
        polls.append(1)
        return select.poll()

    redis_readiness.install(counting_poll)
    assert hiredis._socket_can_read is not green
    return green, polls


def test_zero_timeout_checks_use_the_real_poll_and_agree_with_redis_py(installed):
    green, polls = installed
    ours, theirs = socket.socketpair()
    try:
        assert hiredis._socket_can_read(ours, 0) is False and green(ours, 0) is False
        theirs.sendall(b"+PONG\r\n")
        assert hiredis._socket_can_read(ours, 0) is True and green(ours, 0) is True
        ours.recv(16)
        theirs.close()  # a server-closed connection reads as ready: redis-py then replaces it
        assert hiredis._socket_can_read(ours, 0) is True and green(ours, 0) is True
    finally:
        ours.close()
    assert len(polls) == 3


def test_checks_that_wait_keep_redis_py_path(installed):
    _, polls = installed
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert hiredis._socket_can_read(ours, 0.01) is False
    assert polls == []


def test_install_is_idempotent(installed):
    patched = hiredis._socket_can_read
    redis_readiness.install(select.poll)
    assert hiredis._socket_can_read is patched
