"""Schema pieces shared by every blueprint: the base schema, the error body, pagination."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate


class BaseSchema(Schema):
    """Unknown fields are ignored, so a newer client never breaks an older server."""

    class Meta:
        unknown = EXCLUDE


class ErrorDetail(BaseSchema):
    code = fields.String(required=True, metadata={"example": "not_found"})
    message = fields.String(required=True)
    details = fields.Dict()


class ErrorSchema(BaseSchema):
    """The contract's error body."""

    error = fields.Nested(ErrorDetail, required=True)


class PageArgs(BaseSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class PageSchema(BaseSchema):
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)


def text(max_length: int, *, required: bool = False, min_length: int = 0, **kwargs) -> fields.String:
    """A string field with a length bound (and no NUL bytes, which PostgreSQL text refuses)."""
    validators = [validate.Length(min=min_length, max=max_length),
                  validate.Regexp(r"^[^\x00]*$", error="Must not contain NUL characters.")]
    return fields.String(required=required, validate=validators, **kwargs)
