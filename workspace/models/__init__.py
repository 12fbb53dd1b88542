"""The database models; import them from here."""

from .file import ProjectFile
from .job import Job, JobArtifact, JobArtifactChunk, JobStatus
from .project import Membership, Project, Role
from .types import utcnow
from .user import User

__all__ = ["Job", "JobArtifact", "JobArtifactChunk", "JobStatus", "Membership", "Project", "ProjectFile", "Role",
           "User", "utcnow"]
