"""A project's recent room events and last activity time, for the workspace status endpoint.

`emit_to_project` records every room event except cursor moves (too frequent to be news, and a Redis write each)
in a bounded list; file contents are left out (they can be a megabyte) — a client fetches the file instead.
"""

from __future__ import annotations

import json
from typing import Any

from ..extensions import redis_store

KEEP = 50
UNRECORDED = frozenset({"CURSOR_UPDATE"})
_SUMMARY_FIELDS = ("seq", "at", "user", "path", "version", "deleted", "job_id", "status", "attempts")


def _events_key(project_id: int) -> str:
    return redis_store.key("rt", "events", project_id)


def _activity_key(project_id: int) -> str:
    return redis_store.key("rt", "activity", project_id)


def record(project_id: int, event: str, message: dict[str, Any], at: str) -> None:
    if event in UNRECORDED:
        return
    summary = {"event": event, **{k: message[k] for k in _SUMMARY_FIELDS if k in message}}
    summary.setdefault("at", at)
    pipe = redis_store.client.pipeline(transaction=False)
    pipe.lpush(_events_key(project_id), json.dumps(summary))
    pipe.ltrim(_events_key(project_id), 0, KEEP - 1)
    pipe.set(_activity_key(project_id), summary["at"])
    pipe.execute()


def recent(project_id: int, limit: int = KEEP) -> list[dict[str, Any]]:
    """Newest first."""
    events = []
    for raw in redis_store.client.lrange(_events_key(project_id), 0, limit - 1):
        try:
            events.append(json.loads(raw))
        except ValueError:
            continue
    return events


def last_activity_at(project_id: int) -> str | None:
    return redis_store.client.get(_activity_key(project_id))


def clear(project_id: int) -> None:
    redis_store.client.delete(_events_key(project_id), _activity_key(project_id))
