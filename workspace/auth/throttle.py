"""Per-account login throttle: after repeated failures for one email, whatever addresses they come from, further
attempts wait (exponential backoff), beside flask-limiter's per-IP limit.

State lives in Redis (shared by every process): a failure counter per account that expires LOGIN_FAILURE_WINDOW
seconds after the last failure, and a lock key whose TTL is the current backoff. The key is a hash of the normalised
email, so an unknown email is throttled exactly like a real one (nothing tells which exist) and no address is
stored in clear. A locked account is refused before its password is hashed: a guesser gets no answer and costs no CPU.
"""

from __future__ import annotations

import functools
import hashlib
import logging

import redis
from flask import current_app

from ..errors import ApiError
from ..extensions import redis_store

log = logging.getLogger(__name__)


class AccountThrottled(ApiError):
    status, code = 429, "rate_limited"


def _fail_open(fn):
    """Redis unreachable: logins go on with the per-IP limit alone (which falls back to memory) rather than fail."""

    @functools.wraps(fn)
    def guarded(email: str) -> None:
        try:
            fn(email)
        except redis.RedisError as exc:
            log.warning("login throttle store unreachable: %s", exc)

    return guarded


def _keys(email: str) -> tuple[str, str]:
    digest = hashlib.sha256(email.encode()).hexdigest()[:32]
    return redis_store.key("auth", "login-failures", digest), redis_store.key("auth", "login-lock", digest)


@_fail_open
def check(email: str) -> None:
    """Refuse (429 with Retry-After) while the account is in backoff."""
    _, lock = _keys(email)
    wait = redis_store.client.ttl(lock)
    if wait and wait > 0:
        raise AccountThrottled(
            f"Too many failed logins for this account; try again in {wait} seconds.",
            details={"retry_after": wait}, headers={"Retry-After": str(wait)})


@_fail_open
def failed(email: str) -> None:
    """Count a failure; from the LOGIN_FAILURES_BEFORE_BACKOFF-th on, lock the account for a doubling backoff."""
    config = current_app.config
    failures_key, lock = _keys(email)
    pipe = redis_store.client.pipeline()
    pipe.incr(failures_key)
    pipe.expire(failures_key, config["LOGIN_FAILURE_WINDOW_SECONDS"])
    failures = pipe.execute()[0]
    over = failures - config["LOGIN_FAILURES_BEFORE_BACKOFF"]
    if over >= 0:
        backoff = min(config["LOGIN_BACKOFF_BASE_SECONDS"] * 2 ** min(over, 20), config["LOGIN_BACKOFF_MAX_SECONDS"])
        redis_store.client.set(lock, "1", ex=max(int(backoff), 1))
        # The account by its key's hash: operators can correlate repeated lockouts without logging the address.
        log.warning("login backoff", extra={"account": lock.rsplit(":", 1)[-1], "failures": failures,
                                            "backoff_seconds": int(backoff)})


@_fail_open
def succeeded(email: str) -> None:
    """A correct password clears the account's failures."""
    redis_store.client.delete(*_keys(email))
