"""The database models; import them from here."""

from . import sqlite  # noqa: F401 - foreign keys on for every SQLite connection
from .document import Document, DocumentUpdate
from .file import ProjectFile
from .job import Job, JobArtifact, JobArtifactChunk, JobStatus
from .project import Membership, Project, Role
from .types import utcnow
from .user import User

__all__ = ["Document", "DocumentUpdate", "Job", "JobArtifact", "JobArtifactChunk", "JobStatus", "Membership",
           "Project", "ProjectFile", "Role", "User", "utcnow"]
