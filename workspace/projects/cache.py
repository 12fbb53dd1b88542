"""Redis cache of each user's `GET /projects/` pages, never stale after a write returns, from any process.

Keys (all under the configured prefix):
- `projects:gen:<user_id>`: the user's list generation, INCRemented after every committed change that affects the
  user's list (create, update, delete, membership added/removed/role changed).
- `projects:list:<user_id>:<page>:<per_page>`: `"<generation>|<response JSON>"`, with a TTL.

A read is ONE round trip: `MGET gen page`, which the list view folds into its token's revocation check
(`auth.tokens.read_with_revocation_check`), so a cached page costs the request no round trip of its own. The page
counts only when its generation equals the current one. On a miss the reader computes the page and stores it tagged
with the generation it read BEFORE querying the database; if a write committed and bumped the generation meanwhile,
the stored page carries the old tag and no reader will ever accept it. The writer bumps after its commit, so once the
write has returned every reader sees the new generation. The generation key outlives every page (a long TTL
refreshed on each bump), so an expired counter can never make an old page look current again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Any

import redis
from flask import Flask, current_app

from .. import events
from ..extensions import redis_store

log = logging.getLogger(__name__)
# Far longer than any page TTL: a page tagged with an earlier life of the counter has long expired.
MIN_GENERATION_TTL_SECONDS = 7 * 86400


def _gen_key(user_id: int) -> str:
    return redis_store.prefix + _gen_part(user_id)


def _page_key(user_id: int, page: int, per_page: int) -> str:
    return redis_store.prefix + _page_part(user_id, page, per_page)


def _gen_part(user_id: int) -> str:
    return f"projects:gen:{user_id}"


def _page_part(user_id: int, page: int, per_page: int) -> str:
    return f"projects:list:{user_id}:{page}:{per_page}"


def enabled() -> bool:
    return current_app.config["PROJECT_LIST_CACHE_SECONDS"] > 0


def keys(user_id: int, page: int, per_page: int) -> tuple[str, str]:
    """The two keys a lookup reads (generation, page), for a caller that reads them in a round trip of its own."""
    return _keys_under(redis_store.prefix, user_id, page, per_page)


@functools.lru_cache(maxsize=4096)
def _keys_under(prefix: str, user_id: int, page: int, per_page: int) -> tuple[str, str]:
    # Remembered: a cached page's request names its keys twice (for the token check's round trip, then in the view).
    return prefix + _gen_part(user_id), prefix + _page_part(user_id, page, per_page)


def lookup(user_id: int, page: int, per_page: int,
           fetched: list[str | None] | None = None) -> tuple[str, str | None]:
    """(generation, cached JSON or None), from `fetched` (the values of `keys(...)`, already read) or one MGET.
    Redis errors count as a miss, the generation as unknown ("")."""
    if fetched is None:
        try:
            fetched = redis_store.client.mget(*keys(user_id, page, per_page))
        except redis.RedisError as exc:
            log.warning("project list cache unreachable: %s", exc)
            return "", None
    gen, entry = fetched
    gen = gen or "0"
    if entry:
        tag, _, body = entry.partition("|")
        if tag == gen:
            return gen, body
    return gen, None


def store(user_id: int, page: int, per_page: int, generation: str, body: str) -> None:
    """Cache `body` under the generation read before it was computed (skipped when that is unknown)."""
    if not generation:
        return
    try:
        redis_store.client.set(_page_key(user_id, page, per_page), f"{generation}|{body}",
                               ex=current_app.config["PROJECT_LIST_CACHE_SECONDS"])
    except redis.RedisError as exc:
        log.warning("project list cache unreachable: %s", exc)


def invalidate(user_ids: Iterable[int]) -> None:
    """Bump the generation of every user whose list a committed change affected. Call AFTER the commit."""
    ids = sorted(set(user_ids))
    if not ids:
        return
    ttl = max(MIN_GENERATION_TTL_SECONDS, 2 * current_app.config["PROJECT_LIST_CACHE_SECONDS"])
    try:
        with redis_store.client.pipeline(transaction=False) as pipe:
            for user_id in ids:
                pipe.incr(_gen_key(user_id))
                pipe.expire(_gen_key(user_id), ttl)
            pipe.execute()
    except redis.RedisError:
        # The change is committed; nothing can undo it. The pages expire after PROJECT_LIST_CACHE_SECONDS.
        log.exception("could not invalidate the project list cache of users %s", ids)


def init_app(app: Flask) -> None:
    """Forget the affected users' pages on every committed change (connect before the realtime layer, so a client
    told about a change re-reads a fresh list)."""
    events.membership_changed.connect(_membership_changed, sender=app)
    events.project_updated.connect(_members_affected, sender=app)
    events.project_deleted.connect(_members_affected, sender=app)


def _membership_changed(app: Flask, *, user_id: int, **_: Any) -> None:
    invalidate([user_id])


def _members_affected(app: Flask, *, member_ids: list[int], **_: Any) -> None:
    invalidate(member_ids)
