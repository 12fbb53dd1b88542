"""What operators see: Prometheus metrics (`/metrics`), JSON logs and request ids.

`init_app(app)` wires all three into an app; `create_app` calls it once.
"""

from __future__ import annotations

from flask import Flask

from . import logging as json_logging
from . import metrics, request_id


def init_app(app: Flask) -> None:
    """Request ids first (every later hook and log line can read them), then logs, then metrics."""
    request_id.init_app(app)
    json_logging.init_app(app)
    metrics.init_app(app)


def wrap_wsgi(app: Flask) -> None:
    """The outermost WSGI layer: anything written to `wsgi.errors` becomes a JSON log line."""
    json_logging.wrap_wsgi(app)
