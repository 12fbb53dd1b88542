"""Every client → server event answers through its ack: `{ok: true, ...}` or `{ok: false, error: {code, message}}`.

`acked` turns a handler's return value or exception into that shape, so no input can raise out of a handler
(which would leave the client's callback hanging) and the socket always stays usable. `load` reads a payload with
its schema (`payloads`) and refuses it with a `ValidationFailed` naming the fields.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

import redis
from marshmallow import Schema, ValidationError

from ..errors import ApiError, ValidationFailed, error_body, is_storage_outage, storage_unavailable
from ..files.schemas import FilePath

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
        except Exception as exc:
            if is_storage_outage(exc):
                return error_ack(storage_unavailable(exc))
            log.exception("socket event %s failed", handler.__name__)
            return {"ok": False, **error_body("internal_error", "An unexpected error occurred; it has been logged.")}

    return wrapper


def load(schema: Schema, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as `schema` loads it, or `invalid_payload` (`invalid_path` when only a path string broke the
    path rules, as over REST) with the schema's message per field in `details.fields`."""
    try:
        return schema.load(payload)
    except ValidationError as exc:
        fields = exc.messages if isinstance(exc.messages, dict) else {"_payload": exc.messages}
        first = next(iter(fields.values()))
        first = first[0] if isinstance(first, list) and first else first
        path_rules = all(isinstance(schema.fields.get(name), FilePath) and isinstance(payload.get(name), str)
                         for name in fields)
        raise ValidationFailed(f"{next(iter(fields))}: {first}", code="invalid_path" if path_rules else
                               "invalid_payload", details={"fields": fields}) from None
