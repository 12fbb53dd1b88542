"""Request and response bodies of the file endpoints."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate

from ..errors import ValidationFailed
from ..schemas import BaseSchema
from .paths import validate_path


class FilePath(fields.String):
    """A file path inside a project, held to `paths.validate_path`: one limit and one message wherever a path is
    loaded (the REST URL goes through the service's check, socket payloads through this field)."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        path = super()._deserialize(value, attr, data, **kwargs)
        try:
            return validate_path(path)
        except ValidationFailed as exc:
            raise ValidationError(exc.message) from None


class FileSaveIn(BaseSchema):
    content = fields.String(required=True, metadata={"description": "UTF-8 text, at most MAX_FILE_BYTES bytes."})
    base_version = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=0, max=2**31 - 1),
        metadata={"description": "The version this edit is based on: omitted/null overwrites, 0 means the file "
                                 "must not exist yet, n succeeds only if the current version is n (else 409 with "
                                 "`details.current_version`)."},
    )


class FileSavedOut(BaseSchema):
    path = fields.String(required=True)
    version = fields.Integer(required=True)


class FileMetaOut(BaseSchema):
    path = fields.String(required=True)
    version = fields.Integer(required=True)
    size = fields.Integer(required=True, metadata={"description": "Content size in UTF-8 bytes."})
    updated_at = fields.DateTime(required=True)
    updated_by = fields.Integer(required=True, allow_none=True, metadata={"description": "User id of the last writer."})


class FileListOut(BaseSchema):
    items = fields.List(fields.Nested(FileMetaOut), required=True)


class FileOut(BaseSchema):
    path = fields.String(required=True)
    content = fields.String(required=True)
    version = fields.Integer(required=True)
    updated_at = fields.DateTime(required=True)
    updated_by = fields.Integer(required=True, allow_none=True)
