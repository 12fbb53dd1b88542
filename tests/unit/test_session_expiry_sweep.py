"""The expiry sweep of socket token sessions (workspace/realtime/sessions.py) looks only at what expired: a heap of
expiry times, not a walk over every socket of the process twice a second (measured: most of an idle 10,000-socket
process's CPU). What it ends, and when, is unchanged; handed-over and closed sessions are not ended."""

from __future__ import annotations

import pytest

from workspace.realtime import sessions as sessions_module
from workspace.realtime.sessions import TokenSession


@pytest.fixture
def tracked(app, monkeypatch):
    app.config["SOCKET_TOKEN_GRACE_SECONDS"] = 10
    ended = []
    monkeypatch.setattr(sessions_module, "end", lambda server, sid, namespace, reason: (
        ended.append((sid, namespace, reason)), sessions.by_sid.pop((namespace, sid), None)))
    sessions = app.extensions["socket_sessions"]
    sessions.ended = ended
    return sessions


def token(expires_at: float, jti: str = "j") -> TokenSession:
    return TokenSession(user_id=1, name="u", jti=jti, family=None, expires_at=expires_at)


def test_only_sockets_past_expiry_and_grace_are_ended_each_once(tracked):
    for sid, expires_at in (("late", 200.0), ("early", 100.0), ("doc", 100.0)):
        tracked._track(sid, "/" if sid != "doc" else "/yjs|1/a.txt", token(expires_at))
    tracked.sweep(now=109.9)
    assert tracked.ended == []
    tracked.sweep(now=110.0)
    assert sorted(tracked.ended) == [("doc", "/yjs|1/a.txt", "token_expired"), ("early", "/", "token_expired")]
    tracked.sweep(now=150.0)
    assert len(tracked.ended) == 2
    tracked.sweep(now=210.0)
    assert tracked.ended[-1] == ("late", "/", "token_expired") and len(tracked.ended) == 3
    assert tracked.expiries == []


def test_a_handed_over_token_counts_from_its_own_expiry_and_a_closed_socket_is_not_ended(tracked):
    tracked._track("renewed", "/", token(100.0, "old"))
    tracked._track("renewed", "/", token(500.0, "new"))  # hand_over: same socket, fresh token
    tracked._track("gone", "/", token(100.0))
    tracked.by_sid.pop(("/", "gone"))  # what close() does at disconnect
    tracked.sweep(now=200.0)
    assert tracked.ended == []
    tracked.sweep(now=510.0)
    assert tracked.ended == [("renewed", "/", "token_expired")]


def test_a_failed_disconnect_is_retried_at_the_next_sweep(tracked, monkeypatch):
    calls = []

    def flaky(server, sid, namespace, reason):
        calls.append(sid)
        if len(calls) == 1:
            raise RuntimeError("queue down")
        tracked.by_sid.pop((namespace, sid), None)

    monkeypatch.setattr(sessions_module, "end", flaky)
    tracked._track("s", "/", token(100.0))
    tracked.sweep(now=200.0)
    tracked.sweep(now=200.5)
    assert calls == ["s", "s"] and tracked.expiries == []


def test_entries_of_closed_sessions_do_not_pile_up(tracked):
    for i in range(5000):  # connect and disconnect churn, tokens far from expiry
        tracked._track(f"s{i}", "/", token(10_000.0))
        tracked.by_sid.pop(("/", f"s{i}"))
    tracked._track("kept", "/", token(10_000.0))
    assert len(tracked.expiries) <= 2 * len(tracked.by_sid) + 1024
    tracked.sweep(now=20_000.0)
    assert tracked.ended == [("kept", "/", "token_expired")]
