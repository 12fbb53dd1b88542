"""Every authentication attempt over REST is announced (`events.auth_attempted`) with its outcome."""

from __future__ import annotations

import functools

from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import PyJWTError
from werkzeug.exceptions import HTTPException

from .. import events
from ..errors import ApiError

# What a refused caller raises (a 4xx); anything else is a failure on our side.
_REFUSALS = (ApiError, HTTPException, JWTExtendedException, PyJWTError)


def announced(kind: str):
    """Decorate an auth view (right under `@bp.route`): `success` when it returns, `failure` when the caller is
    refused (a 4xx, including token checks made by decorators below this one), `error` on a server-side failure."""

    def decorate(view):
        @functools.wraps(view)
        def attempt(*args, **kwargs):
            try:
                result = view(*args, **kwargs)
            except Exception as exc:
                status = getattr(exc, "status", None) or getattr(exc, "code", None)
                server_side = isinstance(status, int) and status >= 500 or not isinstance(exc, _REFUSALS)
                events.announce(events.auth_attempted, kind=kind, outcome="error" if server_side else "failure")
                raise
            events.announce(events.auth_attempted, kind=kind, outcome="success")
            return result

        return attempt

    return decorate
