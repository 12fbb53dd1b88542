"""Run a CPU-bound call in a real OS thread, so the green hub keeps serving everyone else meanwhile.

Under eventlet that is `eventlet.tpool.execute`, under gevent the hub's threadpool; in a plain threaded process (the
RQ worker, the tests, `flask run`) the call simply runs where it is. Which one applies is decided by what this
process actually monkey-patched, not by a setting that could disagree with it. Only for calls that release the GIL
(argon2-cffi's hashing does) and need no app or request context: the thread has neither.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def in_thread(fn: Callable[..., T], *args) -> T:
    """`fn(*args)`, computed in an OS thread when the process runs on a green hub; its result or its exception."""
    if _patched_by("eventlet"):
        from eventlet import tpool  # imported only in a process that runs eventlet (optional at import time)

        return tpool.execute(fn, *args)
    if _patched_by("gevent"):
        import gevent  # likewise: only loaded in a gevent process

        return gevent.get_hub().threadpool.apply(fn, args)
    return fn(*args)


def _patched_by(library: str) -> bool:
    if library not in sys.modules:  # never imported: certainly not patched, and no import cost
        return False
    if library == "eventlet":
        from eventlet import patcher  # see in_thread: present, since eventlet is in sys.modules

        return patcher.is_monkey_patched("thread")
    from gevent import monkey  # see in_thread: present, since gevent is in sys.modules

    return monkey.is_module_patched("threading")
