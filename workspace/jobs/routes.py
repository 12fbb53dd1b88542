"""/api/v1/jobs and /api/v1/projects/<id>/jobs: run jobs, read their state, download an export."""

from __future__ import annotations

from flask import Response, stream_with_context
from flask_jwt_extended import jwt_required
from flask_smorest import Blueprint

from ..auth.current import current_user_id
from ..errors import NotFound
from ..schemas import PageArgs
from . import service
from .queue import RQDispatcher
from .runner import EmbeddedDispatcher
from .schemas import MAX_ID, IdempotencyHeader, JobAcceptedOut, JobOut, JobPageOut, JobRunIn

bp = Blueprint("jobs", __name__, url_prefix="/api/v1", description="Background jobs.")


@bp.record
def _install_dispatcher(state) -> None:
    """Each app hands attempts to RQ (REDIS_URL set) or runs them in-process; the service only sees the result."""
    app = state.app
    app.extensions["jobs_dispatcher"] = RQDispatcher(app) if app.config.get("REDIS_URL") else EmbeddedDispatcher(app)


def _checked_id(value: int) -> int:
    if value > MAX_ID:
        raise NotFound("Job not found.", code="job_not_found")
    return value


@bp.route("/jobs/run", methods=["POST"])
@jwt_required()
@bp.arguments(JobRunIn())
@bp.arguments(IdempotencyHeader(), location="headers")
@bp.response(202, JobAcceptedOut)
@bp.alt_response(200, schema=JobAcceptedOut, description="Replay of an Idempotency-Key: the original job.")
@bp.alt_response(403, description="Viewers may not run jobs.")
@bp.alt_response(404, description="No such project (or not a member).")
@bp.alt_response(409, description="Idempotency-Key reused with a different body.")
@bp.alt_response(422, description="Unknown type or invalid payload.")
@bp.alt_response(429, description="`job_quota_exceeded`: the caller already has JOB_MAX_IN_FLIGHT_PER_USER "
                                  "unfinished jobs (details: limit, in_flight).")
@bp.alt_response(503, description="The job queue is unavailable; nothing was created.")
def run_job(body, headers):
    """Queue a job on a project (owner or collaborator)."""
    job, created = service.submit(current_user_id(), body["project_id"], body["type"], body["payload"],
                                  headers.get("idempotency_key"))
    return {"job_id": job.id, "status": "queued"}, (202 if created else 200)


@bp.route("/jobs/<int:job_id>", methods=["GET"])
@jwt_required()
@bp.response(200, JobOut)
@bp.alt_response(404, description="No such job (or not a member of its project).")
def get_job(job_id):
    """A job's state, from the database."""
    return service.get_for_member(_checked_id(job_id), current_user_id())


@bp.route("/jobs/<int:job_id>/artifact", methods=["GET"])
@jwt_required()
@bp.response(200, content_type="application/zip", description="The export's zip archive.")
@bp.alt_response(404, description="No such job, not a member, or the job has no artifact.")
def get_artifact(job_id):
    """Download an export job's zip (streamed from the database a chunk at a time)."""
    artifact = service.artifact_for_member(_checked_id(job_id), current_user_id())
    response = Response(stream_with_context(service.artifact_chunks(artifact.job_id)),
                        mimetype=artifact.content_type, direct_passthrough=True)
    response.content_length = artifact.size
    response.headers["Content-Disposition"] = f'attachment; filename="{artifact.filename}"'
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-SHA256"] = artifact.sha256
    return response


@bp.route("/projects/<int:project_id>/jobs", methods=["GET"])
@jwt_required()
@bp.arguments(PageArgs(), location="query")
@bp.response(200, JobPageOut)
@bp.alt_response(404, description="No such project (or not a member).")
def list_jobs(args, project_id):
    """The project's jobs, newest first (paginated)."""
    if project_id > MAX_ID:
        raise NotFound("Project not found.", code="project_not_found")
    return service.list_for_project(project_id, current_user_id(), args["page"], args["per_page"])
