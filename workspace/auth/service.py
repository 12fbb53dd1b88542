"""Account operations: sign up and check credentials."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, Unauthorized
from ..extensions import db
from ..models import User
from . import throttle
from .passwords import hash_password, verify_password

BAD_CREDENTIALS = "Email or password is incorrect."


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(sa.select(User).where(User.email == normalise_email(email)))


def signup(email: str, password: str, name: str | None = None) -> User:
    """Create an account; 409 when the (normalised) email is taken, even by a concurrent signup."""
    email = normalise_email(email)
    user = User(email=email, name=(name or "").strip() or email.split("@")[0], password_hash=hash_password(password))
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict("An account with this email already exists.", code="email_taken") from exc
    return user


def authenticate(email: str, password: str) -> User:
    """The user these credentials belong to; one message for unknown email and wrong password alike, and the same
    work (one Argon2 verification). An account in backoff after repeated failures is refused before any of it."""
    email = normalise_email(email)
    throttle.check(email)
    user = find_user_by_email(email)
    password_hash = user.password_hash if user else None
    # End the read before the slow hash (queued behind others' under a flood of logins): no pooled connection sits
    # idle in a transaction meanwhile. The user's attributes reload on next use.
    db.session.rollback()
    if not verify_password(password_hash, password) or user is None:
        throttle.failed(email)
        raise Unauthorized(BAD_CREDENTIALS, code="invalid_credentials")
    throttle.succeeded(email)
    return user
