"""Turns for green threads whose input is already waiting, so they share the hub instead of holding it.

A green socket's `recv` returns at once, without yielding to the hub, while data is waiting. A websocket's reader
therefore runs for as long as the client's burst lasts: in issue 13's abuse mix, one client's 2,000 unacknowledged
cursor moves kept its reader on the hub for 200-350 ms while every other request and socket of the process waited
(docs/benchmarks.md, "Abuse mix"). The reader (realtime.idle_sockets) handles each message, and under gevent parses
each chunk, inside its `Turn`, which yields once the work done since the last yield passes SLICE.

Only the work inside counts, not the waits between, and the yield comes after the work: a message that arrives after
a wait is handled at once, so the latency of a lone keystroke or cursor is what it was.

The readers are the only unbounded loops. Turns were measured in the others too and taken out: in the queue listener
they cut cursor fan-out to 0.27x the Flask-SocketIO relay at 500 receivers (each writer woke per packet instead of
once per burst), and in a lane's cursor batch (at most SOCKET_BACKLOG handlers) and the writers they cost 5-15 % of
fan-out for no gain in the abuse mix.
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
    """`with turn:` around each unit of work: once the work done since the last yield reaches SLICE seconds, the
    turn yields to the hub with `sleep(PAUSE)` as the work ends."""

    __slots__ = ("sleep", "spent", "began")

    def __init__(self, sleep: Callable[[float], Any]) -> None:
        self.sleep = sleep
        self.spent = 0.0
        self.began = 0.0

    def __enter__(self) -> Turn:
        self.began = time.monotonic()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.spent += time.monotonic() - self.began
        if self.spent >= SLICE:
            self.spent = 0.0
            self.sleep(PAUSE)
