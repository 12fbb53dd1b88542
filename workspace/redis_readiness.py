"""redis-py's per-command readiness check as one non-blocking syscall under eventlet and gevent.

Before every command, redis-py's pool asks whether the pooled connection holds unread bytes (a dirty or
server-closed connection is replaced): with hiredis, `select.poll()` with timeout 0. eventlet's monkey-patching
deletes `select.poll`, so redis-py falls back to a green selector that parks the greenlet on the hub for a loop turn
(gevent's patched `poll` does the same): one hub switch per Redis command, 6 % of a cached project list request in
py-spy. A poll with timeout 0 never blocks, so the process's real `poll` gives the same answer without the switch;
checks that wait (timeout not 0) keep the green path. `wsgi.py` installs it with the real `poll` after patching.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

from redis._parsers import hiredis


def install(real_poll: Callable[[], Any]) -> None:
    """Answer redis-py's zero-timeout readiness checks with `real_poll` (the unpatched `select.poll`). Idempotent."""
    green = hiredis._socket_can_read
    if getattr(green, "real_poll", None) is not None:
        return

    def socket_can_read(sock, timeout):
        if timeout != 0 or (hasattr(sock, "pending") and sock.pending()):
            return green(sock, timeout)  # a wait must yield to the hub; TLS buffers: redis-py's own answer
        poller = real_poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))

    socket_can_read.real_poll = real_poll
    hiredis._socket_can_read = socket_can_read
