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

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._bounds = [(name, field.load_default, field.validators[0].min, field.validators[0].max)
                        for name, field in self.fields.items()]

    def load_query(self, args) -> dict[str, int] | None:
        """What `load(args)` returns for a query whose values are plain ASCII numbers in range (a list view's every
        request), without a marshmallow load; None for any other query, which `load` then reads (its result or its
        422 unchanged)."""
        loaded = {}
        for name, default, low, high in self._bounds:
            raw = args.get(name)
            if raw is None:
                loaded[name] = default
                continue
            if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
                return None
            loaded[name] = int(raw)
        return loaded


class PageSchema(BaseSchema):
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)


def text(max_length: int, *, required: bool = False, min_length: int = 0, **kwargs) -> fields.String:
    """A string field with a length bound (and no NUL bytes, which PostgreSQL text refuses)."""
    validators = [validate.Length(min=min_length, max=max_length),
                  validate.Regexp(r"^[^\x00]*$", error="Must not contain NUL characters.")]
    return fields.String(required=required, validate=validators, **kwargs)
