"""The job types: each one's payload schema (checked at submit, 422 on a bad payload) and its handler.

A handler gets an `Attempt` and returns the job's result; it raises to fail the attempt (retried with backoff).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from ..errors import ValidationFailed
from .attempt import Attempt, JobFailure
from .export import build_export

MAX_SLEEP_SECONDS = 60
MAX_FAIL_TIMES = 10


class FlakyFailure(JobFailure):
    """The deliberate failure of a `flaky` job."""


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class AnyPayload(Schema):
    """`echo`: any JSON object, returned as the result."""

    class Meta:
        unknown = "include"


class SleepPayload(_Strict):
    seconds = fields.Float(required=True, allow_nan=False,
                           validate=validate.Range(min=0, max=MAX_SLEEP_SECONDS))


class FlakyPayload(_Strict):
    fail_times = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_FAIL_TIMES))


class ExportPayload(_Strict):
    pass


def run_echo(attempt: Attempt) -> Any:
    return attempt.payload


def run_sleep(attempt: Attempt) -> dict:
    remaining = float(attempt.payload["seconds"])
    step = attempt.step
    while remaining > 0:
        chunk = min(step, remaining)
        attempt.sleep(chunk)
        remaining -= chunk
        attempt.heartbeat()
    return {"slept": attempt.payload["seconds"]}


def run_flaky(attempt: Attempt) -> dict:
    fail_times = attempt.payload["fail_times"]
    if attempt.number <= fail_times:
        raise FlakyFailure(f"flaky job failing on purpose (attempt {attempt.number} of the first {fail_times})")
    return {"succeeded_on_attempt": attempt.number}


@dataclass(frozen=True)
class JobType:
    name: str
    schema: type[Schema]
    run: Callable[[Attempt], Any]
    timeout: int  # seconds RQ lets one attempt run before killing it


JOB_TYPES: dict[str, JobType] = {t.name: t for t in (
    JobType("echo", AnyPayload, run_echo, 60),
    JobType("sleep", SleepPayload, run_sleep, MAX_SLEEP_SECONDS + 60),
    JobType("flaky", FlakyPayload, run_flaky, 60),
    JobType("export", ExportPayload, build_export, 600),
)}


def get(name: str) -> JobType:
    try:
        return JOB_TYPES[name]
    except KeyError:
        raise ValidationFailed(f"Unknown job type {name!r}.", details={
            "fields": {"type": [f"Must be one of: {', '.join(JOB_TYPES)}."]}}) from None


def validate_payload(name: str, payload: Any) -> dict[str, Any]:
    """The payload as the handler will get it, or ValidationFailed (422) naming what is wrong."""
    job_type = get(name)
    if not isinstance(payload, dict):
        raise ValidationFailed("The payload must be a JSON object.",
                               details={"fields": {"payload": ["Not an object."]}})
    try:
        loaded = job_type.schema().load(payload)
    except ValidationError as exc:
        raise ValidationFailed(f"Invalid payload for a {name} job.", details={"fields": {"payload": exc.messages}}) \
            from None
    # echo returns exactly what was sent; the others keep their validated, typed values.
    return payload if job_type.schema is AnyPayload else loaded
