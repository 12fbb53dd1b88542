"""Per-socket rate limits: a token bucket, and cursor coalescing (python-socketio has no volatile emit).

Cursor updates over the rate are not queued: the newest one replaces any waiting one and is sent when the bucket
refills, so a flood costs at most one pending payload and one sleeping task per socket, and the room always ends
up with the sender's latest position.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)  # one per socket: no per-instance __dict__
class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self) -> bool:
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until one token is available."""
        self._refill()
        return max(0.0, (1 - self.tokens) / self.rate) if self.rate > 0 else 1.0


@dataclass(slots=True)  # one per socket: no per-instance __dict__
class Coalescer:
    """Holds the latest over-the-rate payload of one socket and whether a flush task is already scheduled."""

    bucket: TokenBucket
    pending: dict[str, Any] | None = None
    flush_scheduled: bool = False

    def offer(self, payload: dict[str, Any]) -> str:
        """'send' now, or 'held' (replacing any older held payload); 'schedule' when a flush must be started."""
        if self.pending is None and self.bucket.take():
            return "send"
        self.pending = payload
        if self.flush_scheduled:
            return "held"
        self.flush_scheduled = True
        return "schedule"

    def pop(self) -> dict[str, Any] | None:
        """The held payload once a token is available (called by the flush task after waiting)."""
        self.flush_scheduled = False
        payload, self.pending = self.pending, None
        if payload is not None:
            self.bucket.take()
        return payload
