"""Password hashing with Argon2id (argon2-cffi), parameters from the configuration.

Hashing and checking run in an OS thread (`offload.in_thread`): Argon2 with 64 MiB takes a few hundred ms of CPU,
which on the green hub would stall every request and socket of the process. At most PASSWORD_HASH_CONCURRENCY of them
run at once (the others wait green): eight bad logins hashing side by side would take both cores of a small host and
starve the hub's own thread, which is what stalled /healthz in issue 13's abuse mix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from ..offload import in_thread

T = TypeVar("T")


def _hasher() -> PasswordHasher:
    hasher = current_app.extensions.get("password_hasher")
    if hasher is None:
        hasher = PasswordHasher(
            time_cost=current_app.config["ARGON2_TIME_COST"],
            memory_cost=current_app.config["ARGON2_MEMORY_KIB"],
        )
        current_app.extensions["password_hasher"] = hasher
    return hasher


def _hashing(fn: Callable[..., T], *args) -> T:
    """`fn(*args)` in an OS thread, once one of the process's hashing slots is free."""
    slots = current_app.extensions.get("password_hash_slots")
    if slots is None:  # created on first use, i.e. after the worker monkey-patched threading: a green semaphore
        slots = threading.BoundedSemaphore(current_app.config["PASSWORD_HASH_CONCURRENCY"])
        slots = current_app.extensions.setdefault("password_hash_slots", slots)
    with slots:
        return in_thread(fn, *args)


def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash with the configured parameters to check unknown emails against: computed once per app, so an unknown
    email costs one verification, exactly as a wrong password does (not a hash plus a verification)."""
    dummy = current_app.extensions.get("dummy_password_hash")
    if dummy is None:
        dummy = current_app.extensions["dummy_password_hash"] = _hashing(hasher.hash, "not-a-password")
    return dummy


def hash_password(password: str) -> str:
    return _hashing(_hasher().hash, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; with no hash (unknown user) it still spends the time of one check."""
    hasher = _hasher()
    known = password_hash is not None
    try:
        matches = _hashing(hasher.verify, password_hash if known else _dummy_hash(hasher), password)
    except (VerificationError, InvalidHashError):
        return False
    return matches and known

