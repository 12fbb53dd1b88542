"""Documenting error responses the same way on every projects/files route (the fuzz test holds us to them)."""

from __future__ import annotations

from ..schemas import ErrorSchema

DESCRIPTIONS = {
    400: "The body is not valid JSON.",
    401: "Missing, expired, revoked or invalid access token.",
    403: "Your role in the project does not allow this.",
    404: "No such project (or you are not a member of it), or no such item in it.",
    409: "Conflicts with the current state (see `error.code`).",
    413: "The body or the file content is too large.",
    415: "The body is not JSON.",
    422: "The body or the parameters are invalid (`error.details.fields` names them).",
    503: "Redis (token revocation) is unreachable.",
}
READ_ERRORS = (401, 404, 503)
WRITE_ERRORS = (400, 401, 403, 404, 415, 422, 503)


def error_responses(bp, *statuses: int):
    """Document each status as an error response with the contract's error body."""

    def decorator(func):
        for status in sorted(set(statuses), reverse=True):
            func = bp.alt_response(status, schema=ErrorSchema, description=DESCRIPTIONS[status])(func)
        return func

    return decorator
