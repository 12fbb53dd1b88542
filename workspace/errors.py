"""The one JSON error shape: `{"error": {"code", "message", "details"?}}`, for every 4xx/5xx and socket ack."""

from __future__ import annotations

import logging
import re
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error a caller should see; raise it from services, views and socket handlers alike."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status or self.status
        self.details = details
        self.headers = headers

    def to_dict(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class ValidationFailed(ApiError):
    status, code = 422, "validation_error"


class ServiceUnavailable(ApiError):
    """Something the request needs is down or busy: safe to retry, and the response says when (Retry-After)."""

    status, code = 503, "service_unavailable"

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs["headers"] = {"Retry-After": "5", **(kwargs.get("headers") or {})}
        super().__init__(message, **kwargs)


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None):
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


_CODES = {400: "bad_request", 413: "payload_too_large", 422: "validation_error", 429: "rate_limited",
          500: "internal_error"}
_MESSAGES = {
    404: "The requested resource does not exist.",
    405: "This method is not allowed on this resource.",
    413: "The request body is too large.",
    415: "Send the body as application/json.",
}


def _code_for(exc: HTTPException) -> str:
    return _CODES.get(exc.code or 500) or re.sub(r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")


def _validation_details(messages: dict[str, Any]) -> dict[str, Any]:
    """webargs groups messages by location (json, query, ...); callers want them by field."""
    fields: dict[str, Any] = {}
    for location_messages in messages.values():
        if isinstance(location_messages, dict):
            fields.update(location_messages)
        else:
            fields.setdefault("_body", location_messages)
    return {"fields": fields}


def handle_http_exception(exc: HTTPException):
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    if status == 422 and messages:
        return error_response(422, "validation_error", "The request body or parameters are invalid.",
                              _validation_details(messages))
    if status == 400 and messages:
        return error_response(400, "invalid_json", "The request body is not valid JSON.")
    if status == 429:
        retry_after = None
        if exc.response is not None:
            retry_after = exc.response.headers.get("Retry-After")
        headers = {"Retry-After": retry_after or "60"}
        return error_response(429, "rate_limited", f"Too many requests ({exc.description}); try again later.",
                              headers=headers)
    message = data.get("message") or _MESSAGES.get(status) or exc.description or exc.name
    headers = {}
    if status == 405 and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    return error_response(status, _code_for(exc), message, headers=headers)


def handle_api_error(exc: ApiError):
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


# A database or Redis that is down, restarting, or holding a lock past DB_LOCK_TIMEOUT_MS: the request may succeed
# when retried, so the caller gets a 503 it can act on rather than a 500 (an integrity or programming error stays
# a logged 500).
STORAGE_OUTAGES = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError,
                   redis.ConnectionError, redis.TimeoutError)


def is_storage_outage(exc: BaseException) -> bool:
    return isinstance(exc, STORAGE_OUTAGES) or (isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated)


def storage_unavailable(exc: Exception) -> ServiceUnavailable:
    """The error a caller sees for a storage outage; logs the cause (without SQL parameters: hide_parameters)."""
    log.warning("storage unavailable: %s: %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
    return ServiceUnavailable("A storage service is unavailable or busy; try again shortly.")


def handle_unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return handle_http_exception(exc)
    if is_storage_outage(exc):
        return handle_api_error(storage_unavailable(exc))
    log.exception("unhandled error")
    return error_response(500, "internal_error", "An unexpected error occurred; it has been logged.")


def register_error_handlers(app: Flask) -> None:
    """Route every error the app can raise through the one shape (after flask-smorest registered its own)."""
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
