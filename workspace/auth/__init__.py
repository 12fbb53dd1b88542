"""Accounts and tokens: the `auth` blueprint and the token machinery."""

from .current import current_user_id, current_user_ref
from .routes import bp

__all__ = ["bp", "current_user_id", "current_user_ref"]
