"""What a file path inside a project may look like.

A path is relative, `/`-separated, at most 512 characters; each segment is 1–255 characters of letters, digits,
spaces and `._-~@+=,()[]`, is not `.` or `..`, and does not start or end with a space. That refuses absolute paths,
traversal, backslashes, control characters and empty segments (`a//b`, a trailing `/`).
"""

from __future__ import annotations

import re

from ..errors import ValidationFailed

MAX_PATH_LENGTH = 512
MAX_SEGMENT_LENGTH = 255
# \w is Unicode-aware: letters and digits of any script are fine, control and surrogate characters are not.
_SEGMENT = re.compile(r"[\w.\-~@+=,()\[\] ]+")


def validate_path(path: str) -> str:
    """The path unchanged if it is acceptable, else ValidationFailed(code="invalid_path") saying why."""
    reason = _problem(path)
    if reason:
        raise ValidationFailed(f"Invalid file path: {reason}.", code="invalid_path", details={"path": path[:600]})
    return path


def _problem(path: str) -> str | None:
    if not isinstance(path, str) or not path:
        return "it is empty"
    if len(path) > MAX_PATH_LENGTH:
        return f"it is longer than {MAX_PATH_LENGTH} characters"
    if path.startswith("/"):
        return "it must be relative (no leading /)"
    if "\\" in path:
        return "backslashes are not allowed"
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            return "empty, '.' and '..' segments are not allowed"
        if len(segment) > MAX_SEGMENT_LENGTH:
            return f"a segment is longer than {MAX_SEGMENT_LENGTH} characters"
        if not _SEGMENT.fullmatch(segment) or segment != segment.strip():
            return "it contains characters that are not allowed"
    return None
