"""The `export` job: a zip of the project's files, stored in the database (any web process can serve it).

Memory stays bounded whatever the project's size: files are read one at a time, the archive is written to a spooled
temporary file (in memory up to one chunk, on disk beyond), and stored as `JobArtifactChunk` rows of at most
`ARTIFACT_CHUNK_BYTES`, which the artifact route streams back one at a time.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile

import sqlalchemy as sa

from ..extensions import db
from ..models import Job, JobArtifact, JobArtifactChunk, JobStatus, ProjectFile
from .attempt import Attempt, AttemptLost

# Each chunk is written by one INSERT, whose escaped parameter and statement cost several times its size.
ARTIFACT_CHUNK_BYTES = 256 * 1024
# Progress is written (and broadcast) about this many times per export, not once per file.
PROGRESS_STEPS = 20


def build_export(attempt: Attempt) -> dict:
    """Zip the project's files and store the archive as the job's artifact; returns {file_count, bytes, sha256}."""
    paths = db.session.scalars(
        sa.select(ProjectFile.path).where(ProjectFile.project_id == attempt.project_id).order_by(ProjectFile.path)
    ).all()
    total = len(paths)
    attempt.heartbeat(progress={"done": 0, "total": total})
    every = max(1, total // PROGRESS_STEPS)
    written = 0
    with tempfile.SpooledTemporaryFile(max_size=ARTIFACT_CHUNK_BYTES) as spool:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for done, path in enumerate(paths, start=1):
                # One file's content at a time.
                content = db.session.scalar(sa.select(ProjectFile.content).where(
                    ProjectFile.project_id == attempt.project_id, ProjectFile.path == path))
                if content is not None:  # None: deleted while we were exporting
                    archive.writestr(path.lstrip("/") or "unnamed", content.encode())
                    written += 1
                del content
                if done % every == 0 or done == total:
                    attempt.heartbeat(progress={"done": done, "total": total})
        size, digest = _store(attempt, spool)
    return {"file_count": written, "bytes": size, "sha256": digest}


def _store(attempt: Attempt, spool) -> tuple[int, str]:
    """Replace the job's artifact with the spooled archive, chunk by chunk, in one transaction that holds the row
    while this attempt still owns it (a lost attempt's late write cannot mix with its successor's)."""
    owned = db.session.scalar(sa.select(Job.id).where(
        Job.id == attempt.job_id, Job.status == JobStatus.RUNNING, Job.attempts == attempt.number).with_for_update())
    if owned is None:
        db.session.rollback()
        raise AttemptLost(f"job {attempt.job_id} attempt {attempt.number} was taken over")
    db.session.execute(sa.delete(JobArtifactChunk).where(JobArtifactChunk.job_id == attempt.job_id))
    db.session.execute(sa.delete(JobArtifact).where(JobArtifact.job_id == attempt.job_id))
    spool.seek(0)
    digest = hashlib.sha256()
    size = seq = 0
    while chunk := spool.read(ARTIFACT_CHUNK_BYTES):
        db.session.execute(sa.insert(JobArtifactChunk).values(job_id=attempt.job_id, seq=seq, data=chunk))
        digest.update(chunk)
        size += len(chunk)
        seq += 1
        del chunk
    db.session.execute(sa.insert(JobArtifact).values(
        job_id=attempt.job_id, content_type="application/zip", size=size, sha256=digest.hexdigest(),
        filename=f"project-{attempt.project_id}-export-{attempt.job_id}.zip"))
    db.session.commit()
    return size, digest.hexdigest()


def artifact_chunks(job_id: int):
    """The artifact's bytes, one chunk per query (a generator: the response streams them)."""
    seq = 0
    while True:
        chunk = db.session.scalar(sa.select(JobArtifactChunk.data).where(
            JobArtifactChunk.job_id == job_id, JobArtifactChunk.seq == seq))
        if chunk is None:
            return
        yield bytes(chunk)
        seq += 1
