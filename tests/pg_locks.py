"""Forcing real overlaps in PostgreSQL: a blocker transaction holds a lock while the contenders start, and the test
waits until PostgreSQL itself reports them all waiting on it (no sleeps, no luck), then releases it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import sqlalchemy as sa


def wait_for_lock_waiters(engine: sa.Engine, blocker_pid: int, count: int, timeout: float = 15) -> None:
    """Until `count` backends wait, directly or through each other, on the blocker's locks (other test sessions
    share the database, so only the blocker's chain counts)."""
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            rows = conn.execute(sa.text("SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity "
                                        "WHERE wait_event_type = 'Lock'")).all()
            conn.rollback()  # pg_stat_activity is a snapshot per transaction: end it to see the next one
            blocked_by = {pid: set(blockers) for pid, blockers in rows}
            chain, grew = {blocker_pid}, True
            while grew:
                grew = False
                for pid, blockers in blocked_by.items():
                    if pid not in chain and blockers & chain:
                        chain.add(pid)
                        grew = True
            if len(chain) - 1 >= count:
                return
            time.sleep(0.02)
    raise TimeoutError(f"fewer than {count} contenders reached the lock")


@contextlib.contextmanager
def holding(engine: sa.Engine, statements: list[str], params: dict | None = None) -> Iterator[int]:
    """Run `statements` in an open transaction and yield its backend pid; roll it back (releasing) on exit."""
    with engine.connect() as blocker:
        transaction = blocker.begin()
        pid = blocker.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        for statement in statements:
            blocker.execute(sa.text(statement), params or {})
        try:
            yield pid
        finally:
            transaction.rollback()
