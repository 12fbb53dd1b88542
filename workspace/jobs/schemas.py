"""Request and response bodies of the jobs API."""

from __future__ import annotations

from marshmallow import fields, validate

from ..schemas import BaseSchema, PageSchema, text
from .types import JOB_TYPES

MAX_ID = 2**31 - 1  # PostgreSQL integer: a larger id is simply not found (never a database error)


class JobRunIn(BaseSchema):
    project_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_ID))
    type = text(40, required=True, min_length=1, metadata={"enum": list(JOB_TYPES)})
    payload = fields.Raw(load_default=dict, metadata={
        "description": "echo: any object; sleep: {seconds: 0..60}; flaky: {fail_times: 0..10}; export: {}"})


class IdempotencyHeader(BaseSchema):
    idempotency_key = text(255, min_length=1, data_key="Idempotency-Key", metadata={
        "description": "Replays of this key (same user, 24 h) return the original job (200), never a second run; "
                       "the same key with a different body is 409."})


class JobAcceptedOut(BaseSchema):
    job_id = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"example": "queued"})


class JobOut(BaseSchema):
    job_id = fields.Integer(attribute="id", required=True)
    project_id = fields.Integer(required=True)
    type = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["queued", "running", "retrying", "succeeded", "failed"]})
    attempts = fields.Integer(required=True)
    max_attempts = fields.Integer(required=True)
    progress = fields.Dict(allow_none=True, metadata={"description": "export: {done, total} files"})
    result = fields.Raw(allow_none=True)
    error = fields.String(allow_none=True, metadata={"description": "the last attempt's error"})
    created_at = fields.DateTime(required=True)
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    next_attempt_at = fields.DateTime(allow_none=True, metadata={
        "description": "when the latest (or next) attempt was due; retries are due after the backoff"})


class JobPageOut(PageSchema):
    items = fields.List(fields.Nested(JobOut), required=True)
