"""A project's recent room events and last activity time, for the workspace status endpoint.

Every room event except cursor moves (too frequent to be news) is summarised into a bounded list by the script
that emits it (`ordered.emit`, the same Redis round trip); file contents are left out (they can be a megabyte) — a
client fetches the file instead.
"""

from __future__ import annotations

import json
from typing import Any

from ..extensions import redis_store

KEEP = 50
_SUMMARY_FIELDS = ("seq", "at", "user", "path", "version", "deleted", "job_id", "status", "attempts")


def _events_key(project_id: int) -> str:
    return redis_store.key("rt", "events", project_id)


def _activity_key(project_id: int) -> str:
    return redis_store.key("rt", "activity", project_id)


def keys(project_id: int) -> tuple[str, str]:
    """The recent-events list and the last-activity time, written by `ordered.emit`'s script."""
    return _events_key(project_id), _activity_key(project_id)


def summary(event: str, message: dict[str, Any], at: str) -> dict[str, Any]:
    """What the status endpoint lists for one event (the seq as sent, contents left out)."""
    return {"event": event, **{k: message[k] for k in _SUMMARY_FIELDS if k in message}, "at": message.get("at", at)}


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
