"""The job path's gauges, read at scrape time: jobs by type and status from the table, RQ's queue by state.

Only `prometheus_client` metric families: the metrics endpoint adds them to its shared collector, so this module
knows nothing of the app's metrics plumbing.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import current_app
from prometheus_client.core import GaugeMetricFamily

from ..extensions import db
from ..models import Job
from .queue import rq_queue

# A label value must stay bounded: a name that could not be a job type is counted as `other`.
_JOB_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def job_type_label(job_type: str) -> str:
    return job_type if job_type and _JOB_TYPE.match(job_type) else "other"


def jobs():
    """`workspace_jobs{type, status}`: every job row, counted by the database (global)."""
    family = GaugeMetricFamily("workspace_jobs", "Jobs in the database by type and status (global).",
                               labels=["type", "status"])
    rows = db.session.execute(sa.select(Job.type, Job.status, sa.func.count()).group_by(Job.type, Job.status))
    totals: dict[tuple[str, str], int] = {}
    for job_type, status, count in rows:
        key = (job_type_label(job_type), str(getattr(status, "value", status)))
        totals[key] = totals.get(key, 0) + count
    for (job_type, status), count in sorted(totals.items()):
        family.add_metric([job_type, status], count)
    yield family


def queue():
    """`workspace_queue_jobs{queue, state}`: RQ's own counts (none in embedded mode, which has no queue)."""
    if not current_app.config.get("REDIS_URL"):
        return
    rq = rq_queue()
    family = GaugeMetricFamily("workspace_queue_jobs", "RQ jobs by state: queued (waiting for a worker), "
                               "started, scheduled (waiting for a retry's delay), deferred, failed (global).",
                               labels=["queue", "state"])
    family.add_metric([rq.name, "queued"], rq.count)
    for state, registry in (("started", rq.started_job_registry), ("scheduled", rq.scheduled_job_registry),
                            ("deferred", rq.deferred_job_registry), ("failed", rq.failed_job_registry)):
        family.add_metric([rq.name, state], registry.get_job_count(cleanup=False))
    yield family
