"""The payloads of client → server socket events, loaded by marshmallow schemas built from the REST ones.

A FILE_CHANGE is a REST file save (`FileSaveIn`) plus where it goes, so the two accept the same values with the
same messages; paths are `FilePath` everywhere. `acks.load` turns a schema's errors into the error ack.
"""

from __future__ import annotations

from marshmallow import fields, validate

from ..files.schemas import FilePath, FileSaveIn
from ..schemas import BaseSchema


def _count(minimum: int, **kwargs) -> fields.Integer:
    """An integer that must be sent as a JSON integer (no "1", 1.5 or true) of at least `minimum`."""
    return fields.Integer(strict=True, validate=validate.Range(min=minimum), **kwargs)


class ProjectEventIn(BaseSchema):
    project_id = _count(1, required=True)


class JoinIn(ProjectEventIn):
    since_seq = _count(0, allow_none=True, load_default=None)


class FileChangeIn(ProjectEventIn, FileSaveIn):
    path = FilePath(required=True)


class CursorIn(ProjectEventIn):
    path = FilePath(required=True)
    line = _count(0, required=True)
    column = _count(0, required=True)


JOIN, LEAVE, FILE_CHANGE, CURSOR = JoinIn(), ProjectEventIn(), FileChangeIn(), CursorIn()
