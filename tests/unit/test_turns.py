"""realtime.turns: a loop with buffered input yields once its work passes SLICE, and under gevent what is ready
runs in between."""

from __future__ import annotations

import time

import gevent
import pytest

from workspace.realtime import turns
from workspace.realtime.turns import Turn


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(turns.time, "monotonic", clock)
    return clock


def work(turn: Turn, clock: Clock, seconds: float) -> None:
    with turn:
        clock.now += seconds


def test_a_turn_yields_after_the_work_that_spends_its_slice_then_begins_another(clock):
    pauses = []
    turn = Turn(pauses.append)
    work(turn, clock, turns.SLICE * 0.6)
    work(turn, clock, turns.SLICE * 0.3)
    assert pauses == []
    work(turn, clock, turns.SLICE * 0.2)
    assert pauses == [turns.PAUSE]
    work(turn, clock, turns.SLICE * 0.9)  # a new slice began at the yield
    assert pauses == [turns.PAUSE]
    work(turn, clock, turns.SLICE * 3)  # one long piece of work: one yield after it
    assert pauses == [turns.PAUSE, turns.PAUSE]


def test_waits_between_the_work_do_not_count(clock):
    """A reader that waited for its next message handles it at once: the wait is not work, so no yield comes first
    (nor right after it)."""
    pauses = []
    turn = Turn(pauses.append)
    for _ in range(10):
        clock.now += 1.0  # waiting for input, other green threads running
        work(turn, clock, turns.SLICE / 20)
    assert pauses == []


def test_a_failing_piece_of_work_still_counts(clock):
    pauses = []
    turn = Turn(pauses.append)
    with pytest.raises(ValueError), turn:
        clock.now += turns.SLICE * 1.5
        raise ValueError
    assert pauses == [turns.PAUSE]


def test_the_pause_is_a_real_sleep_so_gevent_polls_between_turns():
    assert turns.PAUSE > 0  # gevent runs a sleep(0) greenlet again before any I/O or timer (see the module)


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_under_gevent_a_due_timer_runs_between_the_turns_of_busy_loops():
    """Two loops with their input waiting take turns; a greenlet whose timer is due gets in after a turn or two, not
    after the 50 callbacks gevent runs before it polls (with `sleep(0)` both loops would finish first)."""
    events = []

    def loop(name: str) -> None:
        turn = Turn(gevent.sleep)
        for i in range(20):  # 40 turns in all: fewer than gevent's 50 callbacks between two clock checks
            with turn:
                busy(turns.SLICE)
            events.append((name, i))

    def timer() -> None:
        gevent.sleep(0.0005)
        events.append(("timer", None))

    greenlets = [gevent.spawn(timer), gevent.spawn(loop, "a"), gevent.spawn(loop, "b")]
    gevent.joinall(greenlets, timeout=10, raise_error=True)
    assert len(events) == 41
    fired = events.index(("timer", None))
    assert fired <= 6, events[:fired + 1]
