"""Prometheus metrics, served at `GET /metrics` (text format). Production serves them only to
`Authorization: Bearer <METRICS_TOKEN>` (404 while METRICS_TOKEN is unset); development and testing serve them openly.

Two kinds, so that every number is right however many processes run:

- Per process (prometheus-client objects, labelled `process`): what one web process serves — requests and their
  latency by route, auth attempts, project-list cache lookups, socket events received, its open sockets. Each web
  process is its own scrape target; sum across targets.
- Shared, computed at scrape time by `SharedStateCollector` from the state every process shares (jobs by type and
  status from the `jobs` table and queue depth from RQ's Redis keys: `jobs/gauges.py`; connected sockets:
  `realtime/gauges.py`), or recorded into Redis by whichever process saw them (events emitted, job attempt
  durations): job workers are processes nobody scrapes, and RQ's forking worker runs each job in a work
  horse whose in-memory counters die with it. Every process reports the same global value; aggregate them with
  `max`, not `sum`.

Labels are bounded: routes are URL rules, never raw paths; event names and job types outside the known/valid set
collapse to `other`.
"""

from __future__ import annotations

import functools
import hmac
import logging
import math
import time
from collections.abc import Callable, Iterable

import redis
import sqlalchemy as sa
from flask import Flask, Response, current_app, g, request
from flask_smorest import Blueprint
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from .. import events
from ..errors import NotFound, Unauthorized
from ..extensions import db, redis_store
from ..jobs import gauges as job_gauges
from ..jobs.gauges import job_type_label
from .logging import route_label

log = logging.getLogger(__name__)

# `*_created` series double the output and no dashboard reads them.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)
for _default in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_default)

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
SOCKET_EVENTS = frozenset({
    "connect", "disconnect", "join", "leave", "FILE_CHANGE", "CURSOR_UPDATE", "USER_JOIN", "USER_LEAVE",
    "JOB_UPDATE", "MEMBERSHIP_CHANGED", "auth",
})
AUTH_KINDS = frozenset({"signup", "login", "refresh", "logout", "socket"})
JOB_OUTCOMES = frozenset({"succeeded", "failed", "retrying"})

# --- per process -------------------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter("workspace_http_requests", "HTTP requests served, by route (URL rule), method and status.",
                        ["process", "route", "method", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("workspace_http_request_duration_seconds",
                         "Time from the first hook to the response, by route, method and status.",
                         ["process", "route", "method", "status"], buckets=HTTP_BUCKETS, registry=REGISTRY)
AUTH_ATTEMPTS = Counter("workspace_auth_attempts", "Authentication attempts by kind and outcome.",
                        ["process", "kind", "outcome"], registry=REGISTRY)
CACHE_LOOKUPS = Counter("workspace_project_list_cache_lookups", "Project-list cache lookups: hit or miss.",
                        ["process", "result"], registry=REGISTRY)
SOCKET_EVENTS_RECEIVED = Counter("workspace_socket_events_received", "Socket.IO events received from clients.",
                                 ["process", "event"], registry=REGISTRY)
# Collected by SharedStateCollector after its sources, so a scrape reports its own failures.
COLLECT_ERRORS = Counter("workspace_metrics_collect_errors", "Shared-state metrics that could not be read at a scrape.",
                         ["process", "source"], registry=None)


def process_name() -> str:
    return current_app.config.get("PROCESS_NAME") or "main"


def _bounded(value: str, allowed: Iterable[str]) -> str:
    return value if value in allowed else "other"


def auth_attempt(kind: str, ok: bool) -> None:
    """Count one authentication attempt (`kind`: signup, login, refresh, logout, socket)."""
    AUTH_ATTEMPTS.labels(process_name(), _bounded(kind, AUTH_KINDS), "success" if ok else "failure").inc()


_CACHE_LOOKUP_CHILDREN: dict[tuple[str, bool], Counter] = {}


def cache_lookup(hit: bool) -> None:
    """Count one project-list cache lookup (the labelled child looked up once per process name and result)."""
    key = (process_name(), hit)
    child = _CACHE_LOOKUP_CHILDREN.get(key)
    if child is None:
        child = _CACHE_LOOKUP_CHILDREN[key] = CACHE_LOOKUPS.labels(key[0], "hit" if hit else "miss")
    child.inc()


def counts_socket_event(event: str, handler):
    """Wrap a Socket.IO event handler so each event received is counted (registration: `on_event(name, ...)`)."""
    label = _bounded(event, SOCKET_EVENTS)

    @functools.wraps(handler)
    def counted(*args, **kwargs):
        SOCKET_EVENTS_RECEIVED.labels(process_name(), label).inc()
        return handler(*args, **kwargs)

    return counted


# --- shared: recorded in Redis by whichever process saw it -------------------------------------------------------
def _shared_key(name: str) -> str:
    return redis_store.key("metrics", name)


def _best_effort(write) -> None:
    """Metrics never break the work they count: a Redis hiccup loses a sample, nothing else. `write` issues its
    commands on the pipeline it is given: the announcing event's round trip when a domain event is being announced
    (redis_store.batch), else one of its own."""
    if redis_store.later(write):
        return
    try:
        redis_store.write([write])
    except redis.RedisError as exc:
        log.debug("metric not recorded: %s", exc)


def emitted_counter(event: str) -> tuple[str, str]:
    """The hash and field counting server → client `event`s (room events are counted by the script emitting them)."""
    return _shared_key("events_emitted"), _bounded(event, SOCKET_EVENTS)


def event_emitted(event: str) -> None:
    """Count one server → client event (from a web process or a worker alike)."""
    key, field = emitted_counter(event)
    _best_effort(lambda r: r.hincrby(key, field, 1))


def job_changed(job) -> None:
    """A job's committed state change: an attempt that ended (succeeded, retrying, failed) is recorded with how long
    it ran (from its claim to this change; for a lost attempt, until the reaper declared it lost)."""
    outcome = str(getattr(job.status, "value", job.status))
    if outcome not in JOB_OUTCOMES or job.started_at is None:
        return
    ended = job.finished_at or job.updated_at
    job_finished(job.type, outcome, (ended - job.started_at).total_seconds() if ended else 0.0)


def job_finished(job_type: str, outcome: str, seconds: float) -> None:
    """Record one job attempt's end (`outcome`: succeeded, failed, or retrying when another attempt follows)."""
    labels = f"{job_type_label(job_type)}|{_bounded(outcome, JOB_OUTCOMES)}"
    bucket = next((i for i, bound in enumerate(JOB_BUCKETS) if seconds <= bound), len(JOB_BUCKETS))

    key = _shared_key("job_duration")

    def record(pipe) -> None:
        pipe.hincrby(key, f"{labels}|b{bucket}", 1)
        pipe.hincrby(key, f"{labels}|count", 1)
        pipe.hincrbyfloat(key, f"{labels}|sum", max(seconds, 0.0))

    _best_effort(record)


class SharedStateCollector(Collector):
    """Global values read at scrape time from the database and Redis of the app serving the scrape.

    Features add their own producers with `add_source` (the realtime layer its socket counts); a producer that
    fails is counted in `workspace_metrics_collect_errors` and the scrape goes on.
    """

    def __init__(self) -> None:
        self.sources = {"events": self._events, "job_durations": self._job_durations, "jobs": job_gauges.jobs,
                        "queue": job_gauges.queue}

    def add_source(self, name: str, producer: Callable[[], Iterable[Metric]]) -> None:
        self.sources[name] = producer

    def describe(self):
        return []  # computed per scrape; nothing to check at registration

    def collect(self):
        for source, producer in list(self.sources.items()):
            try:
                yield from producer()
            except (redis.RedisError, sa.exc.SQLAlchemyError) as exc:
                db.session.rollback()
                COLLECT_ERRORS.labels(process_name(), source).inc()
                log.warning("metrics source %s unavailable: %s", source, exc)
        yield from COLLECT_ERRORS.collect()

    def _events(self):
        family = CounterMetricFamily("workspace_events_emitted", "Server → client Socket.IO events emitted, by "
                                     "event, from every process and worker (global).", labels=["event"])
        for event, count in sorted(redis_store.client.hgetall(_shared_key("events_emitted")).items()):
            family.add_metric([event], float(count))
        yield family

    def _job_durations(self):
        raw = redis_store.client.hgetall(_shared_key("job_duration"))
        series: dict[tuple[str, str], dict[str, float]] = {}
        for field, value in raw.items():
            job_type, outcome, part = field.split("|", 2)
            series.setdefault((job_type, outcome), {})[part] = float(value)
        family = HistogramMetricFamily("workspace_job_duration_seconds", "Duration of job attempts by type and "
                                       "outcome (global, recorded by the workers).", labels=["type", "outcome"])
        for (job_type, outcome), parts in sorted(series.items()):
            cumulative, buckets = 0.0, []
            for i, bound in enumerate((*JOB_BUCKETS, math.inf)):
                cumulative += parts.get(f"b{i}", 0.0)
                buckets.append(("+Inf" if bound == math.inf else str(bound), cumulative))
            family.add_metric([job_type, outcome], buckets, parts.get("sum", 0.0))
        yield family


SHARED = SharedStateCollector()
REGISTRY.register(SHARED)

# --- HTTP -------------------------------------------------------------------------------------------------------
bp = Blueprint("metrics", __name__, description="Prometheus metrics for operators.")


@bp.route("/metrics", methods=["GET"])
@bp.doc(security=[], summary="Prometheus metrics (text exposition format)", responses={
    "200": {"description": "Prometheus text format. In production only with `Authorization: Bearer <METRICS_TOKEN>` "
                           "(a token of its own, not an access token); development serves it openly.",
            "content": {"text/plain": {"schema": {"type": "string"}}}},
    "401": {"description": "Production: the METRICS_TOKEN bearer is missing or wrong."},
    "404": {"description": "Production without METRICS_TOKEN configured: metrics are not served."}})
def metrics_view():
    """Every metric of this process plus the global ones read from the database and Redis."""
    _check_scraper()
    # The classic text format (0.0.4), which every Prometheus version and scraper reads.
    return Response(generate_latest(REGISTRY), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def _check_scraper() -> None:
    """Production serves metrics to the holder of METRICS_TOKEN only, and not at all while it is unset."""
    if current_app.config["APP_ENV"] != "production":
        return
    expected = current_app.config.get("METRICS_TOKEN")
    if not expected:
        raise NotFound("The requested resource does not exist.")
    presented = request.headers.get("Authorization", "")
    # Constant time: the comparison must not tell a guesser how many leading characters were right.
    if not hmac.compare_digest(presented.encode(), f"Bearer {expected}".encode()):
        raise Unauthorized("Metrics need Authorization: Bearer <METRICS_TOKEN>.",
                           headers={"WWW-Authenticate": 'Bearer realm="metrics"'})


# (process, route, method, status) -> (request counter, latency histogram): prometheus-client's `labels()` takes a
# lock and validates the labels on every call; these are bounded (routes are URL rules), so each is looked up once.
_HTTP_CHILDREN: dict[tuple[str, str, str, int], tuple] = {}


def _observe_request(response: Response) -> Response:
    started = g.get("request_started")
    labels = (process_name(), route_label(), request.method, response.status_code)
    children = _HTTP_CHILDREN.get(labels)
    if children is None:
        names = (*labels[:3], str(labels[3]))
        children = _HTTP_CHILDREN[labels] = (HTTP_REQUESTS.labels(*names), HTTP_LATENCY.labels(*names))
    children[0].inc()
    if started is not None:
        children[1].observe(time.perf_counter() - started)
    return response


def _job_updated(app: Flask, *, job, **_) -> None:
    job_changed(job)


def _auth_attempted(app: Flask, *, kind: str, outcome: str, **_) -> None:
    AUTH_ATTEMPTS.labels(process_name(), _bounded(kind, AUTH_KINDS), outcome).inc()


def _project_list_looked_up(app: Flask, *, hit: bool, **_) -> None:
    cache_lookup(hit)


def init_app(app: Flask) -> None:
    """HTTP metrics for every request; the domain events this module counts."""
    app.after_request(_observe_request)
    events.job_updated.connect(_job_updated, sender=app)
    events.auth_attempted.connect(_auth_attempted, sender=app)
    events.project_list_looked_up.connect(_project_list_looked_up, sender=app)
