"""The document store: load a file's Yjs document, apply editors' updates, write whole texts through updates.

Source of truth is the database: a document is its snapshot plus every stored update after it. Each process keeps
an LRU of decoded documents (`pycrdt.Doc`) as a cache that is caught up from the database before every use (the
updates with an id above the last one applied), so processes never need to hear each other's updates to be right.

Writes are serialised per document: a process-local lock (so green threads of one process queue without holding a
database connection) and the document row's `SELECT ... FOR UPDATE` (across processes). Under both, an update is
applied to the caught-up document (validation: Yrs must decode it), stored, and `project_files` gets the new text,
size and version in the SAME transaction; only after the commit is anything announced. A failed write discards the
cached document (it may hold the refused update), so the next use reloads it from the database.

A path becomes a file on the first update that changes its text; deleting a file clears the text through an
update and keeps the document, so editors still holding its history merge with whatever comes next.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app
from pycrdt import Doc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from .. import events
from ..errors import Conflict, NotFound, PayloadTooLarge, ServiceUnavailable, ValidationFailed
from ..extensions import db
from ..files import quota
from ..files.paths import validate_path
from ..models import Document, DocumentUpdate, ProjectFile, utcnow
from ..policy import Action, authorize
from . import compaction, crdt
from .crdt import EMPTY_UPDATE, InvalidUpdate

log = logging.getLogger(__name__)

# Striped locks: bounded memory however many documents a process touches. threading.Lock is green under
# eventlet/gevent monkey-patching, so a waiting writer yields the hub.
_LOCKS = [threading.Lock() for _ in range(64)]

__all__ = ["Change", "InvalidUpdate", "apply_update", "delete_text", "state_for", "state_vector", "write_text"]


@dataclass(frozen=True)
class Change:
    """A committed write. `version` is the file's version after it (None when the text did not change and no
    file was written); `update` is what live editors must receive (EMPTY_UPDATE: nothing)."""

    project_id: int
    path: str
    version: int | None
    created: bool
    update: bytes


@dataclass
class _Loaded:
    document_id: int
    doc: Doc
    last_id: int = 0  # highest stored update (or snapshot_upto) applied to `doc`


class DocumentCache:
    """This app's decoded documents, least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[int, str], _Loaded] = OrderedDict()

    def get(self, key: tuple[int, str]) -> _Loaded | None:
        loaded = self.entries.get(key)
        if loaded is not None:
            self.entries.move_to_end(key)
        return loaded

    def put(self, key: tuple[int, str], loaded: _Loaded) -> None:
        self.entries[key] = loaded
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)

    def drop(self, key: tuple[int, str]) -> None:
        self.entries.pop(key, None)


def _cache() -> DocumentCache:
    cache = current_app.extensions.get("documents")
    if cache is None:
        cache = current_app.extensions["documents"] = DocumentCache(current_app.config["COEDIT_CACHE_DOCUMENTS"])
    return cache


def _lock(key: tuple[int, str]) -> threading.Lock:
    return _LOCKS[zlib.crc32(f"{key[0]}/{key[1]}".encode()) % len(_LOCKS)]


# --- reading ---------------------------------------------------------------------------------------------------
def state_for(project_id: int, path: str, state_vector: bytes | None = None) -> bytes:
    """The update a peer holding `state_vector` is missing (None: the whole document), as of the last commit.

    The caller has checked read access. A path without a document or file is an empty document."""
    return crdt.missing_from(_current(project_id, path), state_vector or EMPTY_UPDATE)


def state_vector(project_id: int, path: str) -> bytes:
    """The document's state vector as of the last commit (what y-socket.io's server sends in sync-step-1)."""
    return _current(project_id, path).get_state()


def _current(project_id: int, path: str) -> Doc:
    key = (project_id, path)
    try:
        row = db.session.execute(sa.select(Document.id, Document.snapshot_upto)
                                 .where(Document.project_id == project_id, Document.path == path)).first()
        if row is None:
            if not _file_exists(project_id, path):
                db.session.rollback()
                return crdt.new_doc()
            with _writing(key, None) as (loaded, _):  # an old file without a document: seed it once, under lock
                return loaded.doc
        loaded = _caught_up(key, row.id, row.snapshot_upto)
        db.session.rollback()  # end the read transaction: the socket event that asked may live long
        return loaded.doc
    except DBAPIError as exc:
        db.session.rollback()
        raise _unavailable(exc) from exc


def _caught_up(key: tuple[int, str], document_id: int, snapshot_upto: int) -> _Loaded:
    cache = _cache()
    loaded = cache.get(key)
    if loaded is None or loaded.document_id != document_id:
        loaded = _Loaded(document_id, crdt.new_doc())
    if snapshot_upto > loaded.last_id:
        # Compacted past what we hold: the updates in between are gone from the table, the snapshot has them.
        snapshot = db.session.scalar(sa.select(Document.snapshot).where(Document.id == document_id))
        if snapshot:
            crdt.apply(loaded.doc, snapshot)
        loaded.last_id = snapshot_upto
    rows = db.session.execute(sa.select(DocumentUpdate.id, DocumentUpdate.data)
                              .where(DocumentUpdate.document_id == document_id, DocumentUpdate.id > loaded.last_id)
                              .order_by(DocumentUpdate.id))
    for update_id, data in rows:
        crdt.apply(loaded.doc, data)
        loaded.last_id = update_id
    cache.put(key, loaded)
    return loaded


def _file_exists(project_id: int, path: str) -> bool:
    return db.session.scalar(sa.select(sa.func.count()).select_from(ProjectFile)
                             .where(ProjectFile.project_id == project_id, ProjectFile.path == path)) > 0


# --- writing ---------------------------------------------------------------------------------------------------
def apply_update(project_id: int, path: str, user: dict, update: bytes, origin: object = None) -> Change:
    """Apply an editor's Yjs update (owner/collaborator only), store it, materialise the text, then announce it.

    Raises InvalidUpdate (not a Yjs update), NotFound/Forbidden (role), ValidationFailed (path),
    PayloadTooLarge (the text would exceed MAX_FILE_BYTES), ServiceUnavailable (database down)."""
    validate_path(path)
    crdt.check(update)  # before Yrs sees it: some malformed updates crash or poison it (documents.wire)
    if update == EMPTY_UPDATE:
        return Change(project_id, path, None, False, EMPTY_UPDATE)
    key = (project_id, path)
    with _writing(key, user["id"]) as (loaded, document):
        # Inside the locks: an editor's burst of updates waits on the process lock without holding a database
        # connection each, and the role is read in the transaction that stores the update.
        authorize(project_id, user["id"], Action.EDIT)
        before = crdt.text_of(loaded.doc)
        crdt.apply(loaded.doc, update)
        after = crdt.text_of(loaded.doc)
        _store(loaded, document, update, user["id"])
        version, created = None, False
        if after != before or not _file_exists(project_id, path):
            version, created = _materialize(project_id, path, after, user["id"])
    _announce(Change(project_id, path, version, created, update), origin)
    if version is not None:
        events.announce(events.document_edited, project_id=project_id, path=path, version=version, user=user,
                        content=after)
    return Change(project_id, path, version, created, update)


def write_text(project_id: int, path: str, user: dict, content: str, base_version: int | None = None,
               origin: object = None) -> Change:
    """Replace the whole text (REST PUT, socket FILE_CHANGE) through a minimal update that live editors receive.

    `base_version` keeps its compare-and-set meaning (see `files.service`); the version always goes up by one."""
    key = (project_id, path)
    with _writing(key, user["id"]) as (loaded, document):
        current = db.session.scalar(sa.select(ProjectFile.version).where(ProjectFile.project_id == project_id,
                                                                          ProjectFile.path == path)) or 0
        if base_version is not None and base_version != current:
            raise Conflict(f"The file changed since base_version (current version {current}).", code="conflict",
                           details={"current_version": current})
        update = crdt.replace_text(loaded.doc, content)
        if update != EMPTY_UPDATE:
            _store(loaded, document, update, user["id"])
        version, created = _materialize(project_id, path, content, user["id"])
    change = Change(project_id, path, version, created, update)
    _announce(change, origin)
    return change


def delete_text(project_id: int, path: str, user: dict, origin: object = None) -> int:
    """Delete the file: its text is cleared through an update (live editors see it go), the file row removed.
    Returns the file's last version; NotFound when there is no such file."""
    key = (project_id, path)
    with _writing(key, user["id"]) as (loaded, document):
        version = db.session.scalar(sa.delete(ProjectFile)
                                    .where(ProjectFile.project_id == project_id, ProjectFile.path == path)
                                    .returning(ProjectFile.version))
        if version is None:
            raise NotFound("File not found.", code="file_not_found", details={"path": path[:600]})
        update = crdt.replace_text(loaded.doc, "")
        if update != EMPTY_UPDATE:
            _store(loaded, document, update, user["id"])
    _announce(Change(project_id, path, version, False, update), origin)
    return version


@contextmanager
def _writing(key: tuple[int, str], user_id: int | None) -> Iterator[tuple[_Loaded, Document]]:
    """Under the document's locks, the caught-up document and its (locked) row; commits on success. On any error
    rolls back and forgets the cached document, which may already hold the refused change."""
    with _lock(key):
        try:
            document = _locked_row(key)
            loaded = _caught_up(key, document.id, document.snapshot_upto)
            if loaded.last_id == 0 and not document.update_count:
                _seed(loaded, document, key, user_id)
            yield loaded, document
            document_id, stored = document.id, document.update_count
            db.session.commit()
        except DBAPIError as exc:
            db.session.rollback()
            _cache().drop(key)
            raise _unavailable(exc) from exc
        except BaseException:
            db.session.rollback()
            _cache().drop(key)
            raise
    # After the commit, so the compaction (maybe already running elsewhere) sees every update counted here.
    compaction.schedule_if_due(document_id, stored)


def _locked_row(key: tuple[int, str]) -> Document:
    project_id, path = key
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    db.session.execute(dialect.insert(Document)
                       .values(project_id=project_id, path=path, snapshot_upto=0, update_count=0,
                               created_at=utcnow())
                       .on_conflict_do_nothing(index_elements=["project_id", "path"]))
    return db.session.scalars(sa.select(Document).where(Document.project_id == project_id, Document.path == path)
                              .with_for_update().execution_options(populate_existing=True)).one()


def _seed(loaded: _Loaded, document: Document, key: tuple[int, str], user_id: int | None) -> None:
    """A file written before co-editing existed has text but no history: its text becomes the first update."""
    content = db.session.scalar(sa.select(ProjectFile.content).where(ProjectFile.project_id == key[0],
                                                                      ProjectFile.path == key[1]))
    if content:
        _store(loaded, document, crdt.replace_text(loaded.doc, content), user_id)


def _store(loaded: _Loaded, document: Document, update: bytes, user_id: int | None) -> None:
    update_id = db.session.scalar(sa.insert(DocumentUpdate)
                                  .values(document_id=document.id, data=update, user_id=user_id,
                                          created_at=utcnow())
                                  .returning(DocumentUpdate.id))
    loaded.last_id = update_id
    document.update_count += 1


def _materialize(project_id: int, path: str, text: str, user_id: int) -> tuple[int, bool]:
    """Write the document's text into its file row (version + 1, or a new file at version 1)."""
    size = len(text.encode("utf-8"))
    limit = current_app.config["MAX_FILE_BYTES"]
    if size > limit:
        raise PayloadTooLarge(f"The text would be {size} bytes; the limit is {limit}.", code="file_too_large",
                              details={"size": size, "max_bytes": limit})
    if "\x00" in text:
        raise ValidationFailed("File content must not contain NUL characters.", code="invalid_content")
    quota.check_write(project_id, path, size)
    values = {"content": text, "size": size, "updated_by": user_id, "updated_at": utcnow()}
    version = db.session.scalar(sa.update(ProjectFile)
                                .where(ProjectFile.project_id == project_id, ProjectFile.path == path)
                                .values(**values, version=ProjectFile.version + 1)
                                .returning(ProjectFile.version))
    if version is not None:
        return version, False
    db.session.execute(sa.insert(ProjectFile).values(project_id=project_id, path=path, version=1, **values))
    return 1, True


def _announce(change: Change, origin: object) -> None:
    if change.update != EMPTY_UPDATE:
        events.announce(events.document_changed, project_id=change.project_id, path=change.path,
                        update=change.update, origin=origin)


def _unavailable(exc: Exception) -> ServiceUnavailable:
    log.warning("document storage unavailable: %s", exc)
    return ServiceUnavailable("Document storage is unavailable; your editor will resync when it is back.",
                              code="storage_unavailable")


def forget(project_id: int, path: str) -> None:
    """Drop the cached document (tests; and after an external change to the tables)."""
    _cache().drop((project_id, path))
