"""Projects and their collaborators: two blueprints under /api/v1/projects, the list cache, the services."""

from .collaborators import bp as collaborators_bp
from .routes import bp

__all__ = ["bp", "collaborators_bp"]
