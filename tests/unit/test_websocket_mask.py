"""The C-speed websocket unmasking installed under eventlet gives eventlet's own bytes for every length and offset,
and the message cap refuses a message that grows past the limit over several fragments."""

from __future__ import annotations

import os
import random

import pytest
from eventlet import websocket

from workspace.realtime import eventlet_websocket
from workspace.realtime.eventlet_websocket import apply_mask


def reference(data, mask, length=None, offset=0):
    """RFC 6455 section 5.3, byte by byte: what eventlet's own `_apply_mask` computes."""
    length = len(data) if length is None else length
    return bytes(data[i] ^ mask[(offset + i) % 4] for i in range(length))


@pytest.mark.parametrize("offset", range(8))
def test_every_length_and_offset_matches_eventlet(offset):
    rng = random.Random(offset)
    for length in [*range(0, 70), 127, 128, 1023, 4096, 65537]:
        data = os.urandom(length)
        mask = tuple(rng.randrange(256) for _ in range(4))
        assert apply_mask(data, mask, length=length, offset=offset) == reference(data, mask, length, offset)


def test_length_shorter_than_the_data_and_default_length():
    data, mask = os.urandom(40), (1, 2, 3, 4)
    assert apply_mask(data, mask, length=13, offset=3) == reference(data, mask, 13, 3)
    assert apply_mask(data, mask) == reference(data, mask)


def test_unmasking_twice_restores_the_data():
    data, mask = os.urandom(1 << 20), (0xDE, 0xAD, 0xBE, 0xEF)
    assert apply_mask(apply_mask(data, mask, offset=2), mask, offset=2) == data


def test_install_patches_once_and_caps_fragmented_messages():
    eventlet_websocket.install()
    eventlet_websocket.install()
    ws = websocket.RFC6455WebSocket
    assert ws.__dict__["_apply_mask"].__func__ is apply_mask
    message = ws.Message(2, 10)
    message.push(b"x" * 6)
    with pytest.raises(websocket.FailedConnectionError) as refused:
        message.push(b"x" * 5, final=True)
    assert refused.value.status == 1009
    ok = ws.Message(2, 10)
    ok.push(b"x" * 10, final=True)
    assert ok.getvalue() == b"x" * 10
