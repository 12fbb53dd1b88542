"""Compaction: merge a document's stored updates into its snapshot, so loading stays fast however long the history.

Enqueued (once a minute at most per document) when a document holds more than COEDIT_COMPACT_THRESHOLD updates
since its snapshot: on the app's RQ queue, run by the Procfile worker (`compact_task`); in embedded mode as a
background task of the one process. The merge reads committed rows without locking; the swap (new snapshot,
merged rows deleted) takes the document row's lock for a moment and is skipped if another compaction won.
"""

from __future__ import annotations

import contextlib
import logging

import redis
import sqlalchemy as sa
from flask import Flask, current_app

from ..extensions import db, redis_store, socketio
from ..jobs.queue import rq_queue
from ..jobs.tasks import worker_app
from ..models import Document, DocumentUpdate, utcnow
from . import crdt

log = logging.getLogger(__name__)
TASK = "workspace.documents.compaction.compact_task"


def schedule_if_due(document_id: int, update_count: int) -> bool:
    """Enqueue a compaction of the document when it holds enough stored updates; True when one was enqueued."""
    if update_count < current_app.config["COEDIT_COMPACT_THRESHOLD"]:
        return False
    try:
        if not redis_store.client.set(redis_store.key("coedit", "compacting", document_id), 1, nx=True, ex=60):
            return False
        if redis_store.embedded:
            socketio.start_background_task(_run_embedded, current_app._get_current_object(), document_id)
        else:
            rq_queue().enqueue(TASK, document_id, job_timeout=600, result_ttl=60, failure_ttl=24 * 3600,
                               description=f"compact document {document_id}")
    except redis.RedisError as exc:  # compaction is an optimisation: the write it rides on must not fail
        log.warning("compaction of document %s not enqueued: %s", document_id, exc)
        return False
    log.info("compaction of document %s enqueued (%d updates)", document_id, update_count)
    return True


def compact_task(document_id: int) -> dict | None:
    """RQ entry point (runs in the worker process)."""
    with worker_app().app_context():
        return compact(document_id)


def _run_embedded(app: Flask, document_id: int) -> None:
    try:
        with app.app_context():
            compact(document_id)
    except Exception:  # a background task has no caller to raise to
        log.exception("compaction of document %s failed", document_id)


def compact(document_id: int) -> dict | None:
    """Merge the document's snapshot and stored updates into a new snapshot; what was done, or None if nothing."""
    row = db.session.execute(sa.select(Document.snapshot, Document.snapshot_upto)
                             .where(Document.id == document_id)).first()
    if row is None:
        return None
    updates = db.session.execute(sa.select(DocumentUpdate.id, DocumentUpdate.data)
                                 .where(DocumentUpdate.document_id == document_id,
                                        DocumentUpdate.id > row.snapshot_upto)
                                 .order_by(DocumentUpdate.id)).all()
    db.session.rollback()
    if not updates:
        return None
    doc = crdt.new_doc()
    if row.snapshot:
        crdt.apply(doc, row.snapshot)
    for _, data in updates:
        crdt.apply(doc, data)
    snapshot, upto = crdt.missing_from(doc, crdt.EMPTY_STATE), updates[-1].id
    document = db.session.scalars(sa.select(Document).where(Document.id == document_id).with_for_update()
                                  .execution_options(populate_existing=True)).one_or_none()
    if document is None or document.snapshot_upto != row.snapshot_upto:
        db.session.rollback()
        return None
    db.session.execute(sa.delete(DocumentUpdate).where(DocumentUpdate.document_id == document_id,
                                                       DocumentUpdate.id <= upto))
    document.snapshot, document.snapshot_upto, document.compacted_at = snapshot, upto, utcnow()
    document.update_count = db.session.scalar(sa.select(sa.func.count()).select_from(DocumentUpdate)
                                              .where(DocumentUpdate.document_id == document_id))
    db.session.commit()
    log.info("compacted document %s: %d updates merged into a %d-byte snapshot", document_id, len(updates),
             len(snapshot))
    with contextlib.suppress(redis.RedisError):  # the key expires by itself
        redis_store.client.delete(redis_store.key("coedit", "compacting", document_id))
    return {"document_id": document_id, "merged": len(updates), "snapshot_bytes": len(snapshot)}
