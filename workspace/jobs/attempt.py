"""What a job type's handler works with: one `Attempt` of one job, and `JobFailure`, the error users may read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Attempt:
    """One run of one job, as a handler sees it."""

    job_id: int
    number: int
    project_id: int
    payload: dict[str, Any]
    # Waits without blocking the process's other work (time.sleep in a worker, socketio.sleep embedded).
    sleep: Callable[[float], None]
    # Renews the job's lease (call it at least every `step` seconds in long work) and records progress.
    heartbeat: Callable[..., None]
    # How long a handler may go without a heartbeat: a third of the lease.
    step: float


class JobFailure(RuntimeError):
    """A failure whose message is written for the job's members: it goes into the job's `error` as it is.

    Any other exception is shown as a generic message; its text and traceback only reach the log.
    """


class AttemptLost(RuntimeError):
    """The row no longer belongs to this attempt (it was declared lost and retried): stop working on it."""
