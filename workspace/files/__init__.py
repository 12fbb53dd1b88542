"""A project's files: the blueprint under /api/v1/projects/<id>/files and the save/delete service."""

from .routes import bp

__all__ = ["bp"]
