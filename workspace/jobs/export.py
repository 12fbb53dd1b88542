"""The `export` job: a zip of the project's files, stored in the database (any web process can serve it)."""

from __future__ import annotations

import hashlib
import io
import zipfile

import sqlalchemy as sa

from ..extensions import db
from ..models import JobArtifact, ProjectFile
from .types import Attempt

# Progress is written (and broadcast) about this many times per export, not once per file.
PROGRESS_STEPS = 20


def build_export(attempt: Attempt) -> dict:
    paths = db.session.scalars(
        sa.select(ProjectFile.path).where(ProjectFile.project_id == attempt.project_id).order_by(ProjectFile.path)
    ).all()
    total = len(paths)
    attempt.heartbeat(progress={"done": 0, "total": total})
    every = max(1, total // PROGRESS_STEPS)
    buffer = io.BytesIO()
    written = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for done, path in enumerate(paths, start=1):
            # One file's content at a time: a big project never sits in memory twice.
            content = db.session.scalar(sa.select(ProjectFile.content).where(
                ProjectFile.project_id == attempt.project_id, ProjectFile.path == path))
            if content is None:  # deleted while we were exporting
                continue
            archive.writestr(path.lstrip("/") or "unnamed", content.encode())
            written += 1
            if done % every == 0 or done == total:
                attempt.heartbeat(progress={"done": done, "total": total})
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    attempt.artifact = JobArtifact(job_id=attempt.job_id, content_type="application/zip",
                                   filename=f"project-{attempt.project_id}-export-{attempt.job_id}.zip",
                                   data=data, size=len(data), sha256=digest)
    return {"file_count": written, "bytes": len(data), "sha256": digest}
