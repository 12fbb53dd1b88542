"""The database models; import them from here."""

from .file import ProjectFile
from .job import Job, JobArtifact, JobStatus
from .project import Membership, Project, Role
from .types import utcnow
from .user import User

__all__ = ["Job", "JobArtifact", "JobStatus", "Membership", "Project", "ProjectFile", "Role", "User", "utcnow"]
