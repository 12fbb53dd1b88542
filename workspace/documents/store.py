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

import functools
import logging
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import sqlalchemy as sa
from flask import current_app
from pycrdt import Doc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from .. import db_prepared, events
from ..errors import ApiError, Conflict, NotFound, PayloadTooLarge, ServiceUnavailable, ValidationFailed
from ..extensions import db
from ..files import quota
from ..files.paths import validate_path
from ..models import Document, DocumentUpdate, Membership, ProjectFile, Role, utcnow
from ..policy import Action, can, require, role_select
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
    # The text of `doc` as the last group commit left it (None: unknown), so a keystroke stringifies the text once,
    # not before and after (Yrs walks every block of a text each time).
    text: str | None = None
    # Set by each PostgreSQL write under the row lock: True when it found nothing stored since `last_id` by anyone
    # else, so the next write may send everything in one round trip (`_commit_at_once`); a fresh load starts False.
    alone: bool = False
    writers: frozenset[int] = frozenset()  # authors the last locked group commit of each found allowed to edit

    def apply(self, update: bytes) -> None:
        """Apply a stored update or snapshot (catching up): the text is no longer known."""
        crdt.apply(self.doc, update)
        self.text = None

    def replace_text(self, content: str) -> bytes:
        """`crdt.replace_text` on the document (the update it made): the text is no longer known."""
        self.text = None
        return crdt.replace_text(self.doc, content)


@dataclass
class _Row:
    """The document's row as locked by a write; `stored` counts the updates the write adds."""

    id: int
    snapshot_upto: int
    update_count: int  # before this write
    expected: int  # already added to the stored counter by the lock
    quota_locked: bool
    stored: int = 0
    roles: dict[int, Role | None] = field(default_factory=dict)  # of the authors the write was opened for
    usage: tuple | None = None  # the project's quota.USAGE row, read after the quota lock
    # PostgreSQL, read with the lock (`_lock_and_read`): the file row's version (None: no row yet) and ids for the
    # rows the write may store, one per author, taken from the table's sequence under the row lock, so in commit
    # order as the ids an INSERT would get. None where they were not read: the write then asks (`_file_exists`,
    # INSERT ... RETURNING).
    file_version: int | None = None
    ids: list[int] | None = None
    # The write's own PostgreSQL transaction: statements whose results are known ahead ride with its COMMIT.
    tail: db_prepared.Script | None = None

    def has_file(self, project_id: int, path: str) -> bool:
        return self.file_version is not None if self.ids is not None else _file_exists(project_id, path)


# The write path's statements, built once: building a statement costs more than its round trip, and a prebuilt one
# hits SQLAlchemy's compiled cache at once. Run on the session's connection (Core), not through the ORM.
_documents, _updates, _files = Document.__table__, DocumentUpdate.__table__, ProjectFile.__table__
# Locks the row by counting the updates the write expects to store (an UPDATE locks as SELECT ... FOR UPDATE does,
# and the counter needs no statement of its own); with the quota's lock taken right after, in the same round trip.
_LOCK_ROW = (sa.update(_documents)
             .where(_documents.c.project_id == sa.bindparam("row_project"),
                    _documents.c.path == sa.bindparam("row_path"))
             .values(update_count=_documents.c.update_count + sa.bindparam("expected"))
             .returning(_documents.c.id, _documents.c.snapshot_upto, _documents.c.update_count))
_LOCK_ROW_AND_QUOTA = _LOCK_ROW.returning(quota.lock_of(_documents.c.project_id))
_CATCH_UP = (sa.select(_updates.c.id, _updates.c.data)
             .where(_updates.c.document_id == sa.bindparam("document_id"), _updates.c.id > sa.bindparam("after"))
             .order_by(_updates.c.id))
_INSERT_UPDATES = sa.insert(_updates).returning(_updates.c.id)
_COUNT_STORED = (sa.update(_documents).where(_documents.c.id == sa.bindparam("document_id"))
                 .values(update_count=_documents.c.update_count + sa.bindparam("stored")))
_SAVE_FILE = (sa.update(_files)
              .where(_files.c.project_id == sa.bindparam("file_project"), _files.c.path == sa.bindparam("file_path"))
              .values(content=sa.bindparam("file_content"), size=sa.bindparam("file_size"),
                      updated_by=sa.bindparam("file_by"), updated_at=sa.bindparam("file_at"),
                      version=_files.c.version + 1)
              .returning(_files.c.version))


@functools.cache
def _catch_up_with(authors: int, usage: bool) -> sa.Select:
    """`_CATCH_UP` carrying, on every row, the roles of `authors` users (parameters author_0, ...) and, with `usage`,
    the project's quota usage: one round trip instead of three, still read after the row and quota locks."""
    columns = [role_select(sa.bindparam("project_id"), sa.bindparam(f"author_{i}")).scalar_subquery()
               for i in range(authors)]
    if usage:
        columns += list(quota.USAGE.subquery().c)
    head = sa.select(*columns).subquery()  # exactly one row
    return (sa.select(*head.c, _updates.c.id, _updates.c.data)
            .select_from(head.outerjoin(_updates, sa.and_(_updates.c.document_id == sa.bindparam("document_id"),
                                                           _updates.c.id > sa.bindparam("after"))))
            .order_by(_updates.c.id))


_members = Membership.__table__
_AUTHORS = sa.cast(sa.bindparam("authors"), postgresql.ARRAY(sa.Integer))


@functools.cache
def _lock_and_read_statements(usage: bool) -> tuple[db_prepared.Statement, db_prepared.Statement]:
    """PostgreSQL: `_LOCK_ROW` (with the quota lock when `usage`) and a SELECT of the locked row with the roles of
    the `authors` (an array: one statement whatever their number), the quota usage, the file row's version, one new
    update id per author and the updates after `after`. Sent in ONE query string: in the simple query protocol each
    statement of a string takes its own snapshot, so the SELECT sees everything committed before the locks were
    granted, as a separate round trip would; psycopg2 returns the last statement's rows."""
    authors = (sa.func.unnest(_AUTHORS).table_valued("user_id", with_ordinality="n")
               .render_derived(name="authors"))
    roles = (sa.select(sa.func.array_agg(postgresql.aggregate_order_by(sa.cast(_members.c.role, sa.Text),
                                                                        authors.c.n)))
             .select_from(authors.outerjoin(_members, sa.and_(_members.c.project_id == sa.bindparam("project_id"),
                                                              _members.c.user_id == authors.c.user_id))))
    file_version = sa.select(_files.c.version).where(_files.c.project_id == sa.bindparam("project_id"),
                                                     _files.c.path == sa.bindparam("path"))
    ids = (sa.select(sa.func.array_agg(sa.func.nextval(sa.func.pg_get_serial_sequence(_updates.name, "id"))))
           .select_from(sa.func.generate_series(1, sa.func.cardinality(_AUTHORS))))
    columns = [_documents.c.id, _documents.c.snapshot_upto, _documents.c.update_count, roles.scalar_subquery()]
    if usage:
        columns += list(quota.USAGE.subquery().c)
    columns += [file_version.scalar_subquery(), ids.scalar_subquery()]
    head = (sa.select(*columns).where(_documents.c.project_id == sa.bindparam("row_project"),
                                      _documents.c.path == sa.bindparam("row_path")).subquery())
    read = (sa.select(*head.c, _updates.c.id, _updates.c.data)
            .select_from(head.outerjoin(_updates, sa.and_(_updates.c.document_id == head.c.id,
                                                          _updates.c.id > sa.bindparam("after"))))
            .order_by(_updates.c.id))
    suffix = "_quota" if usage else ""
    return (db_prepared.Statement(f"workspace_document_lock{suffix}", _LOCK_ROW_AND_QUOTA if usage else _LOCK_ROW),
            db_prepared.Statement(f"workspace_document_read{suffix}", read))


# A group's rows with the ids `_lock_and_read` took (one statement whatever their number), and the file row; sent
# with the COMMIT (`_Row.tail`).
_STORE_ROWS = db_prepared.Statement("workspace_document_store", sa.text(
    "INSERT INTO document_updates (id, document_id, data, user_id, created_at) "
    "SELECT id, CAST(:document_id AS integer), data, user_id, CAST(:created_at AS timestamptz) "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:datas AS bytea[]), CAST(:users AS integer[]))"
    " AS rows (id, data, user_id)"))
_SAVE_FILE_LATER = db_prepared.Statement("workspace_document_save", _SAVE_FILE)
_CREATE_FILE = db_prepared.Statement("workspace_document_create", sa.insert(_files).values(
    project_id=sa.bindparam("file_project"), path=sa.bindparam("file_path"), version=1,
    content=sa.bindparam("file_content"), size=sa.bindparam("file_size"), updated_by=sa.bindparam("file_by"),
    updated_at=sa.bindparam("file_at")))
_COUNT_STORED_LATER = db_prepared.Statement("workspace_document_count", _COUNT_STORED)


# `_commit_at_once`'s statement, run after the row lock (`_LOCK_ROW`, with the quota lock when quotas apply) in the
# same query string, so that its snapshot sees everything committed before the locks were granted. It writes only
# when the cached document is the stored one (no snapshot or update after `after`), every author may edit, the file
# row exists and the new size passes the byte quota (as `quota.check_write`: a growing write stays under a
# `max_bytes` above 0); then it stores the rows (ids from the table's sequence, under the row lock, so in commit
# order), counts them and saves the file when `save`. One row: the last id stored, the new update count and the
# file's version; all None when it wrote nothing.
_WRITE_AT_ONCE = db_prepared.Statement("workspace_document_write", sa.text("""
WITH ok AS (
  SELECT d.id FROM documents AS d JOIN project_files AS f ON f.project_id = d.project_id AND f.path = d.path
  WHERE d.id = CAST(:document_id AS integer) AND d.project_id = CAST(:project_id AS integer)
    AND d.path = CAST(:path AS text) AND d.snapshot_upto <= CAST(:after AS bigint)
    AND NOT EXISTS (SELECT FROM document_updates AS u WHERE u.document_id = d.id AND u.id > CAST(:after AS bigint))
    AND cardinality(CAST(:users AS integer[])) = (
      SELECT count(*) FROM memberships AS m WHERE m.project_id = d.project_id
        AND m.user_id = ANY(CAST(:users AS integer[])) AND CAST(m.role AS text) = ANY(CAST(:writers AS text[])))
    AND NOT (CAST(:file_size AS integer) > f.size AND CAST(:max_bytes AS bigint) > 0
             AND (SELECT sum(g.size) FROM project_files AS g WHERE g.project_id = d.project_id)
                 - f.size + CAST(:file_size AS integer) > CAST(:max_bytes AS bigint))
), stored AS (
  INSERT INTO document_updates (document_id, data, user_id, created_at)
  SELECT ok.id, rows.data, rows.user_id, CAST(:created_at AS timestamptz)
  FROM ok CROSS JOIN unnest(CAST(:datas AS bytea[]), CAST(:users AS integer[])) AS rows (data, user_id)
  RETURNING id
), counted AS (
  UPDATE documents SET update_count = update_count + cardinality(CAST(:users AS integer[]))
  WHERE id = (SELECT id FROM ok) RETURNING update_count
), saved AS (
  UPDATE project_files SET content = CAST(:file_content AS text), size = CAST(:file_size AS integer),
    updated_by = CAST(:file_by AS integer), updated_at = CAST(:file_at AS timestamptz), version = version + 1
  WHERE project_id = CAST(:project_id AS integer) AND path = CAST(:path AS text) AND CAST(:save AS boolean)
    AND EXISTS (SELECT FROM ok)
  RETURNING version
)
SELECT (SELECT max(id) FROM stored), (SELECT update_count FROM counted), (SELECT version FROM saved)"""))
_WRITERS = [role.value for role in Role if can(role, Action.EDIT)]
# An editor's update commits without waiting for its WAL flush (COEDIT_SYNCHRONOUS_COMMIT, docs/coediting.md
# Durability): about 0.45 ms p50 and 1 ms p99 of a keystroke's round trip on the benchmark machine.
_NO_FLUSH_WAIT = "SET LOCAL synchronous_commit = off"


class DocumentCache:
    """This app's decoded documents, least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[int, str], _Loaded] = OrderedDict()
        self.groups: dict[tuple[int, str], list[_Waiting]] = {}  # updates waiting for their group commit

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


def _caught_up(key: tuple[int, str], document_id: int, snapshot_upto: int, locked: _Row | None = None,
               authors: tuple[int, ...] = ()) -> _Loaded:
    """The cached document brought up to the last commit. Under a write's lock (`locked`), the same query also reads
    the roles of `authors` and the quota usage into `locked`."""
    cache = _cache()
    loaded = cache.get(key)
    if loaded is None or loaded.document_id != document_id:
        loaded = _Loaded(document_id, crdt.new_doc())
    if snapshot_upto > loaded.last_id:
        # Compacted past what we hold: the updates in between are gone from the table, the snapshot has them.
        snapshot = db.session.scalar(sa.select(Document.snapshot).where(Document.id == document_id))
        if snapshot:
            loaded.apply(snapshot)
        loaded.last_id = snapshot_upto
    params = {"document_id": document_id, "after": loaded.last_id}
    if locked is not None and (authors or locked.quota_locked):
        rows = db.session.connection().execute(_catch_up_with(len(authors), locked.quota_locked), {
            **params, "project_id": key[0], "path": key[1],
            **{f"author_{i}": author for i, author in enumerate(authors)}}).all()
        head = rows[0][:-2]
        locked.roles = dict(zip(authors, head, strict=False))
        locked.usage = tuple(head[len(authors):]) if locked.quota_locked else None
        rows = [row[-2:] for row in rows if row[-2] is not None]
    else:
        rows = db.session.connection().execute(_CATCH_UP, params)
    for update_id, data in rows:
        loaded.apply(data)
        loaded.last_id = update_id
    cache.put(key, loaded)
    return loaded


def _file_exists(project_id: int, path: str) -> bool:
    return db.session.scalar(sa.select(sa.func.count()).select_from(ProjectFile)
                             .where(ProjectFile.project_id == project_id, ProjectFile.path == path)) > 0


# --- writing ---------------------------------------------------------------------------------------------------
def apply_update(project_id: int, path: str, user: dict, update: bytes, origin: object = None) -> Change:
    """Apply an editor's Yjs update (owner/collaborator only), store it, materialise the text, then announce it.

    Group commit: the updates of every editor of the document that wait here are stored together (see `_Waiting`);
    this returns once the caller's own update is committed (and relayed). Raises InvalidUpdate (not a Yjs update),
    NotFound/Forbidden (role), ValidationFailed (path), PayloadTooLarge (the text would exceed MAX_FILE_BYTES),
    ServiceUnavailable (database down)."""
    validate_path(path)
    crdt.check(update)  # before Yrs sees it: some malformed updates crash or poison it (documents.wire)
    if update == EMPTY_UPDATE:
        return Change(project_id, path, None, False, EMPTY_UPDATE)
    key = (project_id, path)
    mine = _Waiting(user, update, origin)
    groups = _cache().groups
    with _GROUPS_LOCK:
        queue = groups.get(key)
        leading = queue is None
        if leading:
            groups[key] = queue = []
        queue.append(mine)
    if not leading:
        mine.done.wait()  # green under eventlet/gevent: the hub runs the leader meanwhile
        leading = mine.lead
    if leading:
        _lead(key, queue, groups)
    if isinstance(mine.outcome, BaseException):
        raise mine.outcome
    return mine.outcome


@dataclass(eq=False)
class _Waiting:
    """An editor's update waiting for its document's next group commit.

    Per document and process, the first writer leads: it takes every update waiting (all editors', in arrival
    order), commits them in one transaction (`_commit_group`), relays them as one update, wakes their writers and
    hands the lead to the first update that arrived meanwhile. So a process stores a document's updates at the rate
    of transactions, not of keystrokes, while each writer still returns only once its update is stored."""

    user: dict
    update: bytes
    origin: object
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Change | BaseException | None = None
    lead: bool = False  # woken to lead the next group rather than with an outcome


_GROUPS_LOCK = threading.Lock()  # guards DocumentCache.groups; no section under it switches green threads


def _lead(key: tuple[int, str], queue: list[_Waiting], groups: dict) -> None:
    with _GROUPS_LOCK:
        batch = queue[:]
        del queue[:]
    try:
        _commit_group(key, batch)
    finally:
        for waiting in batch:
            if waiting.outcome is None:  # the leader itself was interrupted
                waiting.outcome = ServiceUnavailable("The update was not stored; your editor will resync.",
                                                     code="storage_unavailable")
            waiting.done.set()
        with _GROUPS_LOCK:
            if queue:
                queue[0].lead = True
                queue[0].done.set()
            else:
                del groups[key]


def _commit_group(key: tuple[int, str], batch: list[_Waiting]) -> None:
    """Store the batch's updates in one transaction and give each waiting writer its outcome; then relay what was
    stored as one update. Each writer's role is read in that transaction (one query for the batch): a refused one is
    left out alone. An update that fails the whole transaction (undecodable, file or quota limit) makes the batch
    retry one update at a time, so only that one is refused."""
    project_id, path = key
    accepted: list[_Waiting] = []
    try:
        at_once = _commit_at_once(key, batch)
        if at_once is not None:
            accepted = batch
            version, created, after = at_once
        else:
            version, created, after = _commit_locked(key, batch, accepted)
    except ServiceUnavailable as exc:
        for waiting in batch:
            waiting.outcome = exc
        return
    except Exception as exc:
        if len(batch) == 1:
            batch[0].outcome = exc
            return
        for waiting in batch:
            waiting.outcome = None
            _commit_group(key, [waiting])
        return
    if not accepted:
        return
    updates = [waiting.update for waiting in accepted]
    origins = {id(waiting.origin) for waiting in accepted}
    # One relay for the group; its writers get their own updates back when there are several (Yjs ignores what it
    # already has), a lone writer does not.
    merged = crdt.merge_all(updates) if len(updates) > 1 else updates[0]
    _announce(Change(project_id, path, version, created, merged), accepted[0].origin if len(origins) == 1 else None)
    for waiting in accepted:
        waiting.outcome = Change(project_id, path, version, created, waiting.update)
    if version is not None:
        events.announce(events.document_edited, project_id=project_id, path=path, version=version,
                        user=accepted[-1].user, content=after)


def _commit_locked(key: tuple[int, str], batch: list[_Waiting], accepted: list[_Waiting]
                   ) -> tuple[int | None, bool, str]:
    """`_commit_group` under the row lock, with the roles, file and quota read first (two round trips on
    PostgreSQL): fills `accepted` with the updates stored; the file's version and whether it was created, and the
    text."""
    project_id, path = key
    authors = tuple(dict.fromkeys(waiting.user["id"] for waiting in batch))
    with _writing(key, batch[0].user["id"], authors, keystrokes=True) as (loaded, document):
        roles = document.roles
        allowed = {author for author, role in roles.items() if can(role, Action.EDIT)}
        loaded.writers = (loaded.writers - roles.keys()) | allowed
        before = loaded.text if loaded.text is not None else crdt.text_of(loaded.doc)
        for waiting in batch:
            try:
                require(roles.get(waiting.user["id"]), Action.EDIT)
            except ApiError as exc:
                waiting.outcome = exc
                continue
            crdt.apply(loaded.doc, waiting.update)
            accepted.append(waiting)
        if not accepted:
            return None, False, before
        after = loaded.text = crdt.text_of(loaded.doc)
        rows = _group_rows(document.id, accepted)
        file = None
        if after != before or not document.has_file(project_id, path):
            file = _checked_file(project_id, path, after, accepted[-1].user["id"], document)
        version, created = _store_and_save(loaded, document, rows, file)
    return version, created, after


def _commit_at_once(key: tuple[int, str], batch: list[_Waiting]) -> tuple[int | None, bool, str] | None:
    """`_commit_group` in ONE round trip (PostgreSQL), tried when this process's last locked write of the document
    found no one else's updates and every author was seen allowed to edit. The updates are applied to the cached
    document, then the row lock and `_WRITE_AT_ONCE` go as one query string, one implicit transaction, which writes
    only if the guess still holds. None when it did not write: the cached document, which holds the batch, is
    forgotten and the caller takes the locked path, which reads what changed and refuses what it must. A database
    error is storage being unavailable, as on the locked path.

    On a pooled psycopg2 connection of its own, in autocommit for the string, not through the session (0.2 ms of a
    keystroke in its transaction's bookkeeping); so never when the session has a transaction open, which the locked
    path joins."""
    project_id, path = key
    authors = [*dict.fromkeys(waiting.user["id"] for waiting in batch)]
    with _lock(key):
        loaded = _cache().get(key)
        if loaded is None or not loaded.alone or loaded.text is None or not loaded.writers.issuperset(authors) \
                or db.session().in_transaction():
            return None
        raw = db.engine.raw_connection()
        explicit = None
        try:
            explicit = _Explicit(raw.driver_connection, raw.info,
                                 db_prepared.prepared_names(raw.info, current_app.config["DB_PREPARED_STATEMENTS"]))
            explicit.dbapi.autocommit = True
            before = loaded.text
            for waiting in batch:
                crdt.apply(loaded.doc, waiting.update)
            after = crdt.text_of(loaded.doc)
            file = _file_values(project_id, path, after, batch[-1].user["id"])
            rows = _group_rows(loaded.document_id, batch)
            lock = _lock_and_read_statements(quota.enabled())[0]
            params = {**file, "row_project": project_id, "row_path": path, "expected": 0,
                      "document_id": loaded.document_id, "project_id": project_id, "path": path,
                      "after": loaded.last_id, "users": [row["user_id"] for row in rows],
                      "datas": [row["data"] for row in rows], "writers": _WRITERS, "created_at": rows[0]["created_at"],
                      "save": after != before, "max_bytes": current_app.config["MAX_PROJECT_BYTES"] or 0}
            if after == before:
                params["file_size"] = 0  # not saved: no quota to pass
            script = db_prepared.Script(explicit.prepared)
            if not current_app.config["COEDIT_SYNCHRONOUS_COMMIT"]:
                script.add(_NO_FLUSH_WAIT)
            script.add(lock, params).add(_WRITE_AT_ONCE, params)
            with explicit.dbapi.cursor() as cursor:
                last_id, count, version = script.run(cursor)[0]
            explicit.dbapi.autocommit = False
        except BaseException as exc:
            _end_explicit(explicit, "ROLLBACK")
            if raw.driver_connection.closed:  # lost: the pool must not hand it out again
                raw.invalidate(exc)
            _cache().drop(key)
            if isinstance(exc, (DBAPIError, psycopg2.Error)):
                raise _unavailable(exc) from exc
            if isinstance(exc, Exception):
                return None  # the locked path tries again, and refuses what a write refuses
            raise
        finally:
            raw.close()
        if last_id is None:
            _cache().drop(key)
            return None
        loaded.last_id, loaded.text = last_id, after
    compaction.schedule_if_due(loaded.document_id, count)
    return version, False, after


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
        update = loaded.replace_text(content)
        if update != EMPTY_UPDATE:
            _store(loaded, document, update, user["id"])
        version, created = _save_file(_checked_file(project_id, path, content, user["id"], document))
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
        update = loaded.replace_text("")
        if update != EMPTY_UPDATE:
            _store(loaded, document, update, user["id"])
    _announce(Change(project_id, path, version, False, update), origin)
    return version


@contextmanager
def _writing(key: tuple[int, str], user_id: int | None, authors: tuple[int, ...] = (), keystrokes: bool = False
             ) -> Iterator[tuple[_Loaded, _Row]]:
    """Under the document's locks, the caught-up document and its (locked) row; commits on success. On any error
    rolls back and forgets the cached document, which may already hold the refused change. `authors`: the users
    whose updates the write stores, one row each (counted with the lock, corrected at the end if it stored another
    number); their roles are read into the row. `keystrokes`: editors' updates, whose commit does not wait for its
    WAL flush unless COEDIT_SYNCHRONOUS_COMMIT (in the write's own transaction; a caller's keeps its own setting)."""
    with _lock(key):
        explicit = connection = None
        try:
            connection = db.session.connection()
            explicit = _explicit_transaction(connection)
            if explicit is not None and keystrokes and not current_app.config["COEDIT_SYNCHRONOUS_COMMIT"]:
                explicit.head.append(_NO_FLUSH_WAIT)
            document, loaded = _lock_and_catch_up(key, authors, explicit)
            if loaded.last_id == 0 and not document.update_count:
                _seed(loaded, document, key, user_id)
            yield loaded, document
            if document.stored != document.expected:
                _later(document, _COUNT_STORED_LATER, {"document_id": document.id,
                                                       "stored": document.stored - document.expected})
            document_id, stored = document.id, document.update_count + document.stored
            _end_explicit(explicit, "COMMIT")
            db.session.commit()
        except (DBAPIError, psycopg2.Error) as exc:
            _abandon(key, explicit, connection, exc)
            raise _unavailable(exc) from exc
        except BaseException as exc:
            _abandon(key, explicit, connection, exc)
            raise
    # After the commit, so the compaction (maybe already running elsewhere) sees every update counted here.
    compaction.schedule_if_due(document_id, stored)


def _abandon(key: tuple[int, str], explicit: _Explicit | None, connection: sa.Connection | None,
             exc: BaseException) -> None:
    """A write failed: its own transaction rolled back, the session's too, and the cached document (which may hold
    the refused change) forgotten."""
    _end_explicit(explicit, "ROLLBACK")
    if (connection is not None and connection.dialect.name == "postgresql" and not connection.invalidated
            and connection.connection.dbapi_connection.closed):
        # Lost under a psycopg2 call of ours: SQLAlchemy, which learns it through its own calls, must not hand the
        # connection out again (nor fail this rollback on it).
        connection.invalidate(exc)
    db.session.rollback()
    _cache().drop(key)


@dataclass
class _Explicit:
    """A write's own PostgreSQL transaction (`_explicit_transaction`; or `_commit_at_once`'s implicit one): its
    psycopg2 connection, the statements that connection prepared (None: DB_PREPARED_STATEMENTS is off) and its pool
    entry's info, which keeps them."""

    dbapi: Any
    info: dict
    prepared: set[str] | None
    tail: db_prepared.Script = field(init=False)
    head: list[str] = field(default_factory=lambda: ["BEGIN"])  # what the first query string starts with

    def __post_init__(self) -> None:
        self.tail = db_prepared.Script(self.prepared)


def _explicit_transaction(connection: sa.Connection) -> _Explicit | None:
    """PostgreSQL, no transaction open yet: the psycopg2 connection, switched to autocommit so that psycopg2 sends no
    `BEGIN` of its own (a round trip per write); the write's first query string starts with `BEGIN` instead, its
    last ends with `COMMIT` (`_end_explicit`). Otherwise (SQLite, or a transaction the caller already opened) None."""
    if connection.dialect.name != "postgresql":
        return None
    dbapi = connection.connection.dbapi_connection
    if dbapi.autocommit or dbapi.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        return None
    dbapi.autocommit = True
    info = connection.connection.info
    return _Explicit(dbapi, info, db_prepared.prepared_names(info, current_app.config["DB_PREPARED_STATEMENTS"]))


def _end_explicit(explicit: _Explicit | None, statement: str) -> None:
    """Send COMMIT (after the statements waiting in the write's tail) or ROLLBACK for an explicit transaction and
    give psycopg2 its own transactions back, before the session ends its (then empty) transaction and returns the
    connection to the pool. On the connection itself, not through the session, which may already refuse statements
    after an error (its own rollback would then be a no-op for psycopg2 in autocommit, and the server's transaction
    would stay open). A ROLLBACK also drops the connection's prepared statements (`db_prepared.forget`). A failed
    COMMIT is storage being unavailable, and is followed by a ROLLBACK in case the transaction is still open; a
    failed ROLLBACK (connection lost) leaves the connection to the session's rollback, which discards it."""
    if explicit is None or not explicit.dbapi.autocommit:
        return
    dbapi = explicit.dbapi
    try:
        try:
            script = explicit.tail if statement == "COMMIT" else db_prepared.Script(None)
            script.add(statement)
            if statement == "ROLLBACK" and (forget := db_prepared.forget(explicit.info)):
                script.add(forget)
            with dbapi.cursor() as cursor:
                script.run(cursor)
        except psycopg2.Error as exc:
            if statement != "ROLLBACK":
                _end_explicit(explicit, "ROLLBACK")
                raise _unavailable(exc) from exc
    finally:
        if not dbapi.closed:
            dbapi.autocommit = False


def _later(document: _Row, statement: db_prepared.Statement, params: dict) -> None:
    """Run a statement whose result the write does not need: with the COMMIT in the write's own transaction, at
    once otherwise."""
    if document.tail is not None:
        document.tail.add(statement, params)
    else:
        db.session.connection().execute(statement.statement, params)


def _lock_and_catch_up(key: tuple[int, str], authors: tuple[int, ...], explicit: _Explicit | None = None
                       ) -> tuple[_Row, _Loaded]:
    """The document's row locked (and the quota lock, when quotas apply), the authors' roles and the quota usage read
    after the locks, and the cached document caught up: one round trip on PostgreSQL when the row exists."""
    connection = db.session.connection()
    found = _lock_and_read(connection, key, authors, explicit) if connection.dialect.name == "postgresql" else None
    if found is None:
        document = _locked_row(key, len(authors))
        found = document, _caught_up(key, document.id, document.snapshot_upto, document, authors)
    found[0].tail = explicit.tail if explicit is not None else None
    return found


def _lock_and_read(connection: sa.Connection, key: tuple[int, str], authors: tuple[int, ...],
                   explicit: _Explicit | None = None) -> tuple[_Row, _Loaded] | None:
    """`_lock_and_catch_up` in one round trip (`_lock_and_read_statements`; in the write's own transaction, prepared
    and after its `BEGIN`); None when the document has no row yet."""
    project_id, path = key
    expected, quota_locked = len(authors), quota.enabled()
    cache = _cache()
    loaded = cache.get(key)
    lock, read = _lock_and_read_statements(quota_locked)
    params = {"row_project": project_id, "row_path": path, "expected": expected, "project_id": project_id,
              "path": path, "after": loaded.last_id if loaded is not None else 0, "authors": list(authors)}
    script = db_prepared.Script(explicit.prepared) if explicit is not None else db_prepared.Script(None)
    for statement in explicit.head if explicit is not None else ():
        script.add(statement)
    with connection.connection.dbapi_connection.cursor() as cursor:
        rows = script.add(lock, params).add(read, params).run(cursor)
    if not rows:
        return None
    head = rows[0]
    document_id, snapshot_upto, count, roles = head[:4]
    document = _Row(document_id, snapshot_upto, count - expected, expected, quota_locked,
                    roles={author: None if role is None else Role(role)
                           for author, role in zip(authors, roles or (), strict=True)},
                    usage=tuple(head[4:7]) if quota_locked else None, file_version=head[-4], ids=sorted(head[-3] or ()))
    if loaded is None or loaded.document_id != document_id:
        if loaded is not None:  # the cache held another document of that path: read it whole
            return document, _caught_up(key, document_id, snapshot_upto)
        loaded = _Loaded(document_id, crdt.new_doc())
    # Nothing new since what we hold (a fresh load cannot tell whose updates it reads).
    alone = 0 < loaded.last_id >= snapshot_upto
    if snapshot_upto > loaded.last_id:  # compacted past what we hold: the snapshot has the updates in between
        snapshot = db.session.scalar(sa.select(Document.snapshot).where(Document.id == document_id))
        if snapshot:
            loaded.apply(snapshot)
        loaded.last_id = snapshot_upto
    for row in rows:
        update_id = row[-2]
        if update_id is not None and update_id > loaded.last_id:
            loaded.apply(bytes(row[-1]))
            loaded.last_id = update_id
            alone = False
    loaded.alone = alone
    cache.put(key, loaded)
    return document, loaded


def _locked_row(key: tuple[int, str], expected: int) -> _Row:
    """The document's row, locked for this transaction (created first if there is none: one more round trip), and
    the project's quota lock when quotas apply, taken after it as every file write does (no deadlock)."""
    project_id, path = key
    connection = db.session.connection()
    quota_locked = connection.dialect.name == "postgresql" and quota.enabled()
    statement = _LOCK_ROW_AND_QUOTA if quota_locked else _LOCK_ROW
    params = {"row_project": project_id, "row_path": path, "expected": expected}
    row = connection.execute(statement, params).first()
    if row is not None:
        return _Row(row[0], row[1], row[2] - expected, expected, quota_locked)
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    db.session.execute(dialect.insert(Document)
                       .values(project_id=project_id, path=path, snapshot_upto=0, update_count=0,
                               created_at=utcnow())
                       .on_conflict_do_nothing(index_elements=["project_id", "path"]))
    row = connection.execute(statement, params).one()
    return _Row(row[0], row[1], row[2] - expected, expected, quota_locked)


def _seed(loaded: _Loaded, document: _Row, key: tuple[int, str], user_id: int | None) -> None:
    """A file written before co-editing existed has text but no history: its text becomes the first update."""
    content = db.session.scalar(sa.select(ProjectFile.content).where(ProjectFile.project_id == key[0],
                                                                      ProjectFile.path == key[1]))
    if content:
        _store(loaded, document, loaded.replace_text(content), user_id)


def _group_rows(document_id: int, group: list[_Waiting]) -> list[dict]:
    """The rows that store a group: one per author (their updates merged)."""
    by_user: dict[int, list[bytes]] = {}
    for waiting in group:
        by_user.setdefault(waiting.user["id"], []).append(waiting.update)
    now = utcnow()
    rows = [{"document_id": document_id, "data": crdt.merge_all(updates) if len(updates) > 1 else updates[0],
             "user_id": user_id, "created_at": now} for user_id, updates in by_user.items()]
    return rows


def _store(loaded: _Loaded, document: _Row, update: bytes, user_id: int | None) -> None:
    _insert(loaded, document, [{"document_id": document.id, "data": update, "user_id": user_id,
                                "created_at": utcnow()}])


def _insert(loaded: _Loaded, document: _Row, rows: list[dict]) -> None:
    # One row: a plain INSERT ... RETURNING; several: one multi-row INSERT (SQLAlchemy's "insertmanyvalues").
    ids = db.session.connection().execute(_INSERT_UPDATES, rows[0] if len(rows) == 1 else rows).scalars().all()
    loaded.last_id = max(ids)
    document.stored += len(rows)


def _store_and_save(loaded: _Loaded, document: _Row, rows: list[dict], file: dict | None
                    ) -> tuple[int | None, bool]:
    """Store a group's rows and save the file row (`_checked_file`; None: the text did not change): the version
    saved and whether the file was created. On PostgreSQL, with the ids and version read with the lock, nothing
    waits for a result: the statements ride with the COMMIT of the write's own transaction (`_later`)."""
    if not document.ids:  # SQLite, or a document whose row this write created: ask as it goes
        _insert(loaded, document, rows)
        return _save_file(file) if file is not None else (None, False)
    ids = document.ids[:len(rows)]
    _later(document, _STORE_ROWS, {"document_id": document.id, "created_at": rows[0]["created_at"], "ids": ids,
                                   "datas": [row["data"] for row in rows], "users": [row["user_id"] for row in rows]})
    loaded.last_id = max(loaded.last_id, ids[-1])  # a seed (`_seed`) stored in this write may have a later id
    document.stored += len(rows)
    if file is None:
        return None, False
    if document.file_version is None:
        _later(document, _CREATE_FILE, file)
        return 1, True
    _later(document, _SAVE_FILE_LATER, file)
    return document.file_version + 1, False


def _checked_file(project_id: int, path: str, text: str, user_id: int, document: _Row) -> dict:
    """`_file_values` once the text also passed the quota (the quota lock and usage as the locked `document` holds
    them)."""
    file = _file_values(project_id, path, text, user_id)
    quota.check_write(project_id, path, file["file_size"], locked=document.quota_locked, usage=document.usage)
    return file


def _file_values(project_id: int, path: str, text: str, user_id: int) -> dict:
    """The file row's new values (the `_SAVE_FILE` parameters) once the text passed the file's own limits."""
    size = len(text.encode("utf-8"))
    limit = current_app.config["MAX_FILE_BYTES"]
    if size > limit:
        raise PayloadTooLarge(f"The text would be {size} bytes; the limit is {limit}.", code="file_too_large",
                              details={"size": size, "max_bytes": limit})
    if "\x00" in text:
        raise ValidationFailed("File content must not contain NUL characters.", code="invalid_content")
    return {"file_project": project_id, "file_path": path, "file_content": text, "file_size": size,
            "file_by": user_id, "file_at": utcnow()}


def _save_file(file: dict) -> tuple[int, bool]:
    version = db.session.connection().execute(_SAVE_FILE, file).scalar()
    return (version, False) if version is not None else _create_file(file)


def _create_file(file: dict) -> tuple[int, bool]:
    db.session.connection().execute(_CREATE_FILE.statement, file)
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
