"""Password hashing with Argon2id (argon2-cffi), parameters from the configuration."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app


def _hasher() -> PasswordHasher:
    hasher = current_app.extensions.get("password_hasher")
    if hasher is None:
        hasher = PasswordHasher(
            time_cost=current_app.config["ARGON2_TIME_COST"],
            memory_cost=current_app.config["ARGON2_MEMORY_KIB"],
        )
        current_app.extensions["password_hasher"] = hasher
    return hasher


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; with no hash (unknown user) it still spends the time of one check."""
    hasher = _hasher()
    if password_hash is None:
        # Equal work for unknown emails, so response time does not reveal which emails exist.
        password_hash = current_app.extensions.setdefault("dummy_password_hash", hasher.hash("not-a-password"))
        candidate_matches = False
    else:
        candidate_matches = True
    try:
        return hasher.verify(password_hash, password) and candidate_matches
    except (VerificationError, InvalidHashError):
        return False
