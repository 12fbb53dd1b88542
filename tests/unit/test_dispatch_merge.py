"""A document socket's waiting Yjs updates merge into one (Yrs' merge), and nothing else does."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

import pycrdt

from workspace.realtime import awareness
from workspace.realtime.dispatch import Dispatcher

NS = "/yjs|1/notes.md"


def typed(*chunks: str) -> list[bytes]:
    """One update per chunk, as an editor sends keystrokes."""
    doc, updates = pycrdt.Doc(), []
    text = doc.get("content", type=pycrdt.Text)
    for chunk in chunks:
        before = doc.get_state()
        text += chunk
        updates.append(doc.get_update(before))
    return updates


def dispatcher(limit: int = 1 << 20) -> Dispatcher:
    return Dispatcher(SimpleNamespace(_handle_event=None), backlog=4, merge_limit=limit)


def text_after(update: bytes) -> str:
    doc = pycrdt.Doc()
    doc.apply_update(update)
    return str(doc.get("content", type=pycrdt.Text))


def test_consecutive_updates_of_one_editor_become_one():
    first, second, third = typed("hel", "lo", " world")
    lane = deque([("sid", NS, None, ["sync-update", first])])
    d = dispatcher()
    assert d._merged(lane, "sid", NS, None, ["sync-update", second])
    assert d._merged(lane, "sid", NS, None, ["sync-update", third])
    assert len(lane) == 1
    assert text_after(lane[0][3][1]) == "hello world"


def test_only_plain_updates_of_the_same_socket_within_the_limit_merge():
    first, second = typed("a", "b")
    d = dispatcher()
    cases = [
        (deque([("sid", NS, None, ["sync-update", first])]), ("other", NS, None, ["sync-update", second])),
        (deque([("sid", NS, 7, ["sync-update", first])]), ("sid", NS, None, ["sync-update", second])),
        (deque([("sid", NS, None, ["sync-update", first])]), ("sid", NS, 3, ["sync-update", second])),
        (deque([("sid", NS, None, ["awareness-update", first])]), ("sid", NS, None, ["sync-update", second])),
        (deque([("sid", "/", None, ["sync-update", first])]), ("sid", "/", None, ["sync-update", second])),
        (deque([("sid", NS, None, ["sync-update", first])]), ("sid", NS, None, ["sync-update", b"\xff\x00junk"])),
        (deque([("sid", NS, None, ["sync-update", "text"])]), ("sid", NS, None, ["sync-update", second])),
    ]
    for lane, (sid, namespace, id, data) in cases:
        assert not d._merged(lane, sid, namespace, id, data)
        assert len(lane) == 1 and lane[0][3][1] in (first, "text")
    assert not d._merged(deque(), "sid", NS, None, ["sync-update", second])  # the lane's last event is running
    small = dispatcher(limit=len(first) + len(second) - 1)
    lane = deque([("sid", NS, None, ["sync-update", first])])
    assert not small._merged(lane, "sid", NS, None, ["sync-update", second])


def presence(*entries: tuple[int, int, str]) -> bytes:
    return awareness.encode([awareness.Entry(client, clock, state) for client, clock, state in entries])


def test_a_newer_caret_state_of_the_same_clients_replaces_the_waiting_one():
    d = dispatcher()
    older = presence((7, 1, '{"cursor": 1}'))
    newer = presence((7, 2, '{"cursor": 2}'))
    lane = deque([("sid", NS, None, ["awareness-update", older])])
    assert d._merged(lane, "sid", NS, None, ["awareness-update", newer])
    assert list(lane) == [("sid", NS, None, ["awareness-update", newer])]


def test_a_caret_state_that_leaves_out_a_client_does_not_replace():
    d = dispatcher()
    both = presence((7, 1, '{"cursor": 1}'), (8, 1, '{"cursor": 5}'))
    lane = deque([("sid", NS, None, ["awareness-update", both])])
    assert not d._merged(lane, "sid", NS, None, ["awareness-update", presence((7, 2, "{}"))])
    assert not d._merged(lane, "sid", NS, None, ["awareness-update", b"\x05junk"])
    assert not d._merged(lane, "sid", NS, None, ["sync-update", typed("a")[0]])
    assert lane[0][3][1] == both
