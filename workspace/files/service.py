"""A project's files: read, save with compare-and-set on `version`, delete. REST and socket `FILE_CHANGE` both
call `save_file` / `delete_file`, so the two behave identically.

Every file is also a co-edited Yjs document (`workspace.documents`): a save or delete changes the text THROUGH a
CRDT update computed from the old and new text, which live editors receive, and the document store writes the file
row in the same transaction. `base_version` semantics: omitted/None overwrites whatever is there (or creates the
file) and bumps the version; `0` means "create only": the file must not exist yet (a missing file's current version
is 0); `n > 0` succeeds only if the stored version is still `n`. Anything else is
`Conflict(code="conflict", details={"current_version": m})` with `m = 0` for a missing file. Race safety: the store
holds the document row's lock while it compares and writes, so of two concurrent writers one sees the other's
version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from .. import events
from ..documents import store as documents
from ..errors import NotFound, PayloadTooLarge, ValidationFailed
from ..extensions import db
from ..models import ProjectFile
from ..policy import Action, authorize
from .paths import validate_path


@dataclass(frozen=True)
class SavedFile:
    path: str
    version: int
    created: bool


@dataclass(frozen=True)
class FileStats:
    count: int
    last_updated_at: datetime | None


def list_files(project_id: int, user_id: int) -> list[dict]:
    """Metadata of every file in the project, by path (no content)."""
    authorize(project_id, user_id, Action.READ)
    rows = db.session.execute(
        sa.select(ProjectFile.path, ProjectFile.version, ProjectFile.size, ProjectFile.updated_at,
                  ProjectFile.updated_by)
        .where(ProjectFile.project_id == project_id)
        .order_by(ProjectFile.path)
    ).mappings()
    return [dict(row) for row in rows]


def get_file(project_id: int, user_id: int, path: str) -> ProjectFile:
    authorize(project_id, user_id, Action.READ)
    found = db.session.scalar(sa.select(ProjectFile).where(ProjectFile.project_id == project_id,
                                                           ProjectFile.path == path))
    if found is None:
        raise NotFound("File not found.", code="file_not_found", details={"path": path[:600]})
    return found


def save_file(project_id: int, user: dict, path: str, content: str, base_version: int | None = None,
              skip_sid: str | None = None) -> SavedFile:
    """Create or replace a file (see the module doc for `base_version`), commit, then announce `file_saved`."""
    authorize(project_id, user["id"], Action.EDIT)
    validate_path(path)
    _checked_size(content)
    if base_version is not None and (isinstance(base_version, bool) or not isinstance(base_version, int)
                                     or base_version < 0):
        raise ValidationFailed("base_version must be a non-negative integer.", code="invalid_base_version")
    change = documents.write_text(project_id, path, user, content, base_version, origin=skip_sid)
    events.announce(events.file_saved, project_id=project_id, path=path, version=change.version, content=content,
                    user=user, skip_sid=skip_sid)
    return SavedFile(path, change.version, change.created)


def delete_file(project_id: int, user: dict, path: str, skip_sid: str | None = None) -> None:
    """Delete a file, commit, then announce `file_deleted` with the last version."""
    authorize(project_id, user["id"], Action.EDIT)
    validate_path(path)
    version = documents.delete_text(project_id, path, user, origin=skip_sid)
    events.announce(events.file_deleted, project_id=project_id, path=path, version=version, user=user,
                    skip_sid=skip_sid)


def file_stats(project_id: int) -> FileStats:
    """How many files the project holds and when one last changed (for the workspace status)."""
    count, last = db.session.execute(
        sa.select(sa.func.count(), sa.func.max(ProjectFile.updated_at)).where(ProjectFile.project_id == project_id)
    ).one()
    return FileStats(int(count), last)


def file_count(project_id: int) -> int:
    return file_stats(project_id).count


def _checked_size(content: str) -> int:
    if not isinstance(content, str):
        raise ValidationFailed("content must be a string.", code="invalid_content")
    if "\x00" in content:
        raise ValidationFailed("File content must not contain NUL characters.", code="invalid_content")
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError as exc:  # lone surrogates from "\ud800" in JSON
        raise ValidationFailed("File content is not valid Unicode text.", code="invalid_content") from exc
    limit = current_app.config["MAX_FILE_BYTES"]
    if size > limit:
        raise PayloadTooLarge(f"File content is {size} bytes; the limit is {limit}.", code="file_too_large",
                              details={"size": size, "max_bytes": limit})
    return size
