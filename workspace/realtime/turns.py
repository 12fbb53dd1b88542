"""Turns for green threads whose input is already waiting, so they share the hub instead of holding it.

A green socket's `recv` returns at once, without yielding to the hub, while data is waiting. A loop that reads and
handles what arrives (a websocket's reader, the message queue's listener) therefore runs for as long as the burst
lasts: in issue 13's abuse mix, one client's 2,000 unacknowledged cursor moves kept the member's reader, and then the
queue listener relaying them, on the hub for 100-350 ms while every other request and socket of the process waited
(docs/benchmarks.md, "Abuse mix"). Such a loop takes a `Turn` before each item and so yields every SLICE at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# Seconds of work a loop does before it lets the others run (a yield with nothing else to run costs a few µs).
SLICE = 0.002
# How long a yield sleeps: more than 0, because gevent runs a `sleep(0)` greenlet again before the loop polls for
# I/O or fires timers, and checks the clock only once per 50 such callbacks. With three busy loops taking 2 ms turns
# that kept every socket and timer waiting 70-100 ms (measured); a sleep of any positive length resumes the greenlet
# on the loop's next iteration, after what is ready has run. eventlet polls between its `sleep(0)` turns anyway.
PAUSE = 1e-6


class Turn:
    """`take()` before each unit of work: once SLICE seconds have passed since the turn began, yields to the hub
    (`sleep(PAUSE)`) and begins a new one. Waits count as work, so a loop that waited for its input yields once on
    return; one whose input is waiting yields at most every SLICE."""

    __slots__ = ("sleep", "began")

    def __init__(self, sleep: Callable[[float], Any]) -> None:
        self.sleep = sleep
        self.began = time.monotonic()

    def take(self) -> None:
        if time.monotonic() - self.began >= SLICE:
            self.sleep(PAUSE)
            self.began = time.monotonic()
