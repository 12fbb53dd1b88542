"""Every client → server event answers through its ack: `{ok: true, ...}` or `{ok: false, error: {code, message}}`.

`acked` turns a handler's return value or exception into that shape, so no input can raise out of a handler
(which would leave the client's callback hanging) and the socket always stays usable. The payload readers below
refuse wrong types with a `ValidationFailed` naming the field.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

import redis

from ..errors import ApiError, ValidationFailed, error_body

log = logging.getLogger(__name__)


def error_ack(exc: ApiError) -> dict[str, Any]:
    ack: dict[str, Any] = {"ok": False, **exc.to_dict()}
    if exc.code == "conflict" and exc.details and "current_version" in exc.details:
        ack["current_version"] = exc.details["current_version"]  # the contract puts it beside `error`
    return ack


def acked(handler: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Callable[..., dict[str, Any]]:
    @wraps(handler)
    def wrapper(payload: Any = None, *_ignored: Any) -> dict[str, Any]:
        try:
            if not isinstance(payload, dict):
                raise ValidationFailed("The payload must be a JSON object.", code="invalid_payload")
            return {"ok": True, **(handler(payload) or {})}
        except ApiError as exc:
            return error_ack(exc)
        except redis.RedisError as exc:
            log.warning("socket event %s failed, Redis unavailable: %s", handler.__name__, exc)
            return {"ok": False, **error_body("service_unavailable", "Realtime store unavailable; try again shortly.")}
        except Exception:
            log.exception("socket event %s failed", handler.__name__)
            return {"ok": False, **error_body("internal_error", "An unexpected error occurred; it has been logged.")}

    return wrapper


def integer(payload: dict[str, Any], name: str, *, required: bool = True, minimum: int = 0) -> int | None:
    value = payload.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationFailed(f"{name} must be an integer >= {minimum}.", code="invalid_payload",
                               details={"field": name})
    return value


def string(payload: dict[str, Any], name: str, *, max_len: int | None = None) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise ValidationFailed(f"{name} must be a string.", code="invalid_payload", details={"field": name})
    if max_len is not None and len(value) > max_len:
        raise ValidationFailed(f"{name} is longer than {max_len} characters.", code="invalid_payload",
                               details={"field": name})
    return value


def project_id(payload: dict[str, Any]) -> int:
    return integer(payload, "project_id", minimum=1)
