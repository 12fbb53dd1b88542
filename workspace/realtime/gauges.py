"""The realtime layer's gauges, added to the shared scrape: sockets open here, sockets joined everywhere."""

from __future__ import annotations

from flask import current_app
from prometheus_client.core import GaugeMetricFamily

from ..observability import metrics
from . import presence


def sockets():
    local = GaugeMetricFamily("workspace_socket_connections", "Authenticated Socket.IO connections open on "
                              "this process.", labels=["process"])
    runtime = current_app.extensions.get("realtime")
    local.add_metric([metrics.process_name()], len(runtime.connections) if runtime is not None else 0)
    yield local
    joined = GaugeMetricFamily("workspace_sockets_in_projects", "Sockets joined to project rooms on every live "
                               "web process, from the shared presence (global).")
    joined.add_metric([], presence.joined_sockets())
    yield joined


metrics.SHARED.add_source("sockets", sockets)
