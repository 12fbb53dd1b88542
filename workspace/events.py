"""Domain events: what the services announce after a change is committed (blinker signals, as `flask.signals`).

A service commits, then calls `announce(signal, **kwargs)`; it never knows who listens. Subscribers (the
realtime broadcasts, the project-list cache, metrics) connect in their own `init_app` with `sender=app`, so a
receiver acts only for the app that sent the event (the tests build many apps in one process) and connecting the
same function again is a no-op. The sender is always the Flask app (`current_app`), as for Flask's own signals.

Receivers run in the order they were first connected (`create_app` connects read models such as the list cache
before the realtime layer, so a client told about a change and re-reading sees it). A receiver's exception
propagates to the service's caller, as a direct call would: a subscriber that must not fail a committed write
catches its own errors.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Generator
from typing import Any

from blinker import NamedSignal
from flask import current_app

from .extensions import redis_store


class DomainEvent(NamedSignal):
    """A blinker signal whose receivers run in connection order (blinker itself keeps them in a set)."""

    def receivers_for(self, sender: Any) -> Generator[Callable[..., Any], None, None]:
        receivers = list(super().receivers_for(sender))
        if len(receivers) < 2:  # most events of a request have one receiver: nothing to order
            yield from receivers
            return
        rank = {}
        for position, ref in enumerate(self.receivers.values()):
            receiver = ref() if isinstance(ref, weakref.ref) else ref
            rank[id(receiver)] = position
        yield from sorted(receivers, key=lambda receiver: rank.get(id(receiver), len(rank)))


file_saved = DomainEvent("file-saved", doc="""A file was created or replaced.
kwargs: project_id (int), path (str), version (int, the new one), content (str), user (dict: id, email, name of
the author), skip_sid (str | None: the socket the change came from, not echoed to it).""")

file_deleted = DomainEvent("file-deleted", doc="""A file was deleted.
kwargs: project_id (int), path (str), version (int, the last one), user (dict), skip_sid (str | None).""")

project_created = DomainEvent("project-created", doc="""A project was created; its creator is its owner.
kwargs: project_id (int), owner_id (int). `membership_changed` is announced too, for the owner.""")

project_updated = DomainEvent("project-updated", doc="""A project's name or description changed.
kwargs: project_id (int), member_ids (list[int]: every member, whose project lists show it).""")

project_deleted = DomainEvent("project-deleted", doc="""A project and everything in it was deleted.
kwargs: project_id (int), member_ids (list[int]: the members it had, taken from the DELETE itself).""")

membership_changed = DomainEvent("membership-changed", doc="""A user's role in a project changed.
kwargs: project_id (int), user_id (int), role (str | None: the new role's value; None when the user was removed).""")

job_updated = DomainEvent("job-updated", doc="""A job's row changed state (claimed, progressed, retried, finished...).
kwargs: job (models.Job, detached, as committed).""")

auth_attempted = DomainEvent("auth-attempted", doc="""Someone tried to authenticate over REST.
kwargs: kind (signup, login, refresh, logout), outcome (success; failure: the caller was refused; error: ours).""")

project_list_looked_up = DomainEvent("project-list-looked-up", doc="""A user's project list was asked for while
the list cache is on. kwargs: hit (bool: served from the cache).""")


tokens_revoked = DomainEvent("tokens-revoked", doc="""Tokens stopped working before their expiry (logout, refresh-token
re-use revoking a family). kwargs: user_id (int), jtis (list[str]: the revoked tokens' ids), family (str | None: a
whole login family revoked), reason (str: "logout" or "refresh_token_reused"). Announced after the blocklist write.""")

document_changed = DomainEvent("document-changed", doc="""A co-edited document took a Yjs update (stored and committed).
kwargs: project_id (int), path (str), update (bytes: the Yjs update every live editor of the document must receive),
origin (str | None: the socket it came from, not echoed to it).""")

document_edited = DomainEvent("document-edited", doc="""An editor's update changed a file's text (the file row has it).
kwargs: project_id (int), path (str), version (int), user (dict), content (str). Keystroke-frequent: receivers
batch (FILE_CHANGE goes out at most once per document per COEDIT_FILE_CHANGE_INTERVAL).""")


def announce(event: DomainEvent, **kwargs: Any) -> None:
    """Send `event` from the current app to its subscribers. Call after the commit. Their best-effort Redis writes
    (metrics) go out with the event's own round trip (see redis_store.batch)."""
    with redis_store.batch():
        event.send(current_app._get_current_object(), **kwargs)
