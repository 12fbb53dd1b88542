"""The job worker: `python -m workspace.jobs.worker` (the Procfile's `worker:` line).

An RQ worker on the RQ_QUEUE queue, reading JSON (never pickles), with the scheduler (RQ's Retry intervals need
it), whose maintenance loop also runs the reaper every JOB_REAPER_INTERVAL_SECONDS (see `queue.py` for what RQ
does and what the reaper adds). JOB_WORKER_CLASS picks `simple` (RQ's SimpleWorker: no fork per job, the
production default, see docs/jobs.md) or `fork` (RQ's Worker: a work horse per job). The classes also work with
`rq worker --serializer rq.serializers.JSONSerializer --worker-class workspace.jobs.worker.ReapingSimpleWorker`.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue as queues
import threading
import time

from rq import Queue as RQQueue
from rq import SimpleWorker, Worker
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.job import _job_stack
from rq.serializers import JSONSerializer
from rq.utils import now as rq_now
from rq.worker import WorkerStatus as RQWorkerStatus

from .. import events
from .queue import TASK, rq_queue
from .service import reap_lost_jobs
from .tasks import worker_app

log = logging.getLogger(__name__)

# Seconds within which a standalone heartbeat repeats the last one (see LeanMixin).
HEARTBEAT_EVERY = 1.0


class ReapingMixin:
    """Runs the lost-job reaper with RQ's own registry maintenance."""

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        try:
            with worker_app().app_context():
                reap_lost_jobs()
        except StopRequested:  # RQ's SIGTERM handler raises it wherever the idle worker happens to be
            raise
        except Exception:  # the worker outlives a database or Redis hiccup; the next pass tries again
            log.exception("job reaper pass failed")


class LeanMixin:
    """Drops the Redis writes RQ's loop repeats per job without changing what they record.

    RQ refreshes the worker's key standalone three times per job (before and after the dequeue, after the job), two
    round trips each, besides the refresh in its suspension check's pipeline at the top of every loop: a standalone
    refresh within HEARTBEAT_EVERY seconds of the last is skipped (the key's TTL, worker_ttl + 60 s or more, was set
    then, so it still covers the blocking dequeue that follows). It also writes the worker's state `idle` twice per
    job; a standalone write of the state the key already holds is skipped. Writes inside RQ's pipelines all happen.
    RQ's suspension check (a round trip whose pipeline carries a heartbeat) runs at the top of every loop: here once
    per HEARTBEAT_EVERY seconds. A succeeded job's last heartbeat is saved with the rest of the job by RQ's success
    pipeline, not on its own, and a row's job (which nothing depends on) skips the read of its dependents.
    """

    _beat_at = float("-inf")
    _suspension_checked_at = float("-inf")

    def check_for_suspension(self, burst: bool) -> None:
        # `rq suspend` still stops the worker before it takes a job more than a second later.
        if time.monotonic() - self._suspension_checked_at < HEARTBEAT_EVERY:
            return
        super().check_for_suspension(burst)
        self._suspension_checked_at = time.monotonic()

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        if pipeline is None and timeout is None and time.monotonic() - self._beat_at < HEARTBEAT_EVERY:
            return
        super().heartbeat(timeout, pipeline)
        self._beat_at = time.monotonic()

    def set_state(self, state: str, pipeline=None) -> None:
        if pipeline is None and state == self._state:
            return
        super().set_state(state, pipeline)

    def handle_job_success(self, job: RQJob, queue, started_job_registry) -> None:
        # RQ WATCHes the job's dependents key and reads it (two round trips) before its success transaction, for the
        # jobs enqueued to run after this one. Nothing runs after a row's job (queue.RQDispatcher enqueues them, never
        # with a dependency): for those the same transaction goes out alone. Other jobs, and repeating ones, get
        # RQ's own handling.
        if job.func_name != TASK or job.repeats_left:
            super().handle_job_success(job, queue, started_job_registry)
            return
        with self.connection.pipeline() as pipeline:  # MULTI/EXEC, as RQ's
            self.increment_successful_job_count(pipeline=pipeline)
            self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
            result_ttl = job.get_result_ttl(self.default_result_ttl)
            if result_ttl == 0:
                # The row holds the outcome (queue.RESULT_TTL): the job is deleted, with no Result, no finished-
                # registry entry and no save of the whole job first. RQ's own deletion (`job.cleanup(0)`) reads
                # the job's status and its executions first, several round trips for keys whose names we know:
                # the started registry's entry and the execution go below (cleanup_execution), as RQ does them.
                pipeline.delete(job.key, job.dependents_key, job.dependencies_key, job.execution_registry.key)
            else:  # RQ 2.12's writes, in its order
                job._handle_success(result_ttl, pipeline=pipeline, worker_name=self.name,
                                    execution_id=self.execution.id if self.execution else None,
                                    execution_started_at=self.execution.created_at if self.execution else None,
                                    execution_ended_at=job.ended_at)
                job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
            self.cleanup_execution(job, pipeline=pipeline)
            # SimpleWorker writes `idle` on its own right after this (a round trip); here it rides along, and the
            # standalone write of the state already stored is skipped (set_state).
            self.set_state(RQWorkerStatus.IDLE, pipeline=pipeline)
            pipeline.execute()

    def handle_execution_ended(self, job: RQJob, queue, heartbeat_ttl: int) -> None:
        # RQ writes the job's last_heartbeat on its own here; after a success, its success pipeline saves the whole
        # job (that field included) a moment later. A failed attempt keeps RQ's write.
        if job.get_status(refresh=False) == RQStatus.FAILED:
            super().handle_execution_ended(job, queue, heartbeat_ttl)
            return
        job.ended_at = job.last_heartbeat = rq_now()


class PreparedJob(RQJob):
    """RQ's job, whose `perform` skips its own PERSIST of the job's key when the worker already sent it with the
    job's preparation (`OnePreparationMixin`)."""

    prepared = False  # prepared (PERSIST included) by OnePreparationMixin

    def perform(self):
        if not self.prepared:
            return super().perform()
        # RQ 2.12's Job.perform without its first line (`self.connection.persist(self.key)`).
        _job_stack.push(self)
        try:
            self._result = self._execute()
        finally:
            assert self is _job_stack.pop()
        return self._result


class OnePreparationMixin:
    """Prepares a job in one round trip where RQ's SimpleWorker takes three, with RQ's writes in RQ's order.

    Before a job runs RQ sends a pipeline for its execution (`prepare_execution`: the execution's hash and registry
    entries, the worker's state `busy`), a second one for the job's bookkeeping (`prepare_job_execution`: the
    worker's current job and heartbeat, the job's heartbeat and status `started`, its removal from the intermediate
    queue), then the job's PERSIST (`Job.perform`). Here they go out as one MULTI/EXEC, so they also apply together.
    Only where one process does both (a forking worker prepares the execution in the parent and the job in the horse).
    """

    job_class = PreparedJob

    def prepare_execution(self, job: RQJob) -> Execution:
        with self.connection.pipeline() as pipeline:
            heartbeat_ttl = self.get_heartbeat_ttl(job)
            self.execution = Execution.create(job, heartbeat_ttl, pipeline=pipeline, worker_name=self.name)
            self.set_state(RQWorkerStatus.BUSY, pipeline=pipeline)
            # What perform_job's prepare_job_execution would send (remove_from_intermediate_queue as it computes it).
            self.set_current_job_id(job.id, pipeline=pipeline)
            self.set_current_job_working_time(0, pipeline=pipeline)
            self.heartbeat(heartbeat_ttl, pipeline=pipeline)
            job.heartbeat(rq_now(), heartbeat_ttl, pipeline=pipeline)
            job.prepare_for_execution(self.name, pipeline=pipeline)
            if len(self.queues) == 1:
                pipeline.lrem(RQQueue(job.origin, connection=self.connection).intermediate_queue_key, 1, job.id)
            pipeline.persist(job.key)  # Job.perform's
            pipeline.execute()
        job.prepared = True
        return self.execution

    def prepare_job_execution(self, job: RQJob, remove_from_intermediate_queue: bool = False) -> None:
        if not getattr(job, "prepared", False):
            super().prepare_job_execution(job, remove_from_intermediate_queue)
            return
        self.procline(f"Processing {job.func_name} from {job.origin} since {time.time()}")


class Announcer:
    """Announces the worker's job changes (`service.announce`) from one thread of its own, in the order they were
    committed, so a JOB_UPDATE's Redis round trip overlaps the job loop (the handler, the completion's UPDATE, RQ's
    bookkeeping) instead of holding it up. The change is committed before it is handed over, as before; a failed
    announcement is logged, as before. Pending announcements are sent before the worker exits (`close`); a worker
    killed with SIGKILL may lose its last ones, which leaves clients a moment behind the row, the truth they re-read.
    A forked child (RQ's work horse, whose `os._exit` would drop them) announces synchronously.
    """

    def __init__(self, app, backlog: int = 1000) -> None:
        self.app = app
        self.pid = os.getpid()
        self._queue: queues.Queue = queues.Queue(maxsize=backlog)  # full: the job loop waits (Redis is slow or down)
        self._thread = threading.Thread(target=self._run, name="job-announcer", daemon=True)
        self._thread.start()

    def take(self, job) -> bool:
        """Queue the announcement of `job`'s committed change; False when the caller must announce it itself."""
        if os.getpid() != self.pid or not self._thread.is_alive():
            return False
        self._queue.put(job)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Send what is pending (waiting at most `timeout` seconds), then stop the thread."""
        if os.getpid() == self.pid and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        with self.app.app_context():
            while (job := self._queue.get()) is not None:
                try:
                    events.announce(events.job_updated, job=job)
                except Exception:  # the change is committed; a subscriber's failure must not stop the others
                    log.exception("job %s: announcement failed", getattr(job, "id", "?"))


class AnnouncingMixin:
    """Announces job changes through an `Announcer` while the worker works (jobs run in this process)."""

    def work(self, *args, **kwargs):
        app = worker_app()
        announcer = app.extensions["jobs_announcer"] = Announcer(app)
        try:
            return super().work(*args, **kwargs)
        finally:
            if app.extensions.get("jobs_announcer") is announcer:
                del app.extensions["jobs_announcer"]
            announcer.close()


class ReapingSimpleWorker(AnnouncingMixin, OnePreparationMixin, LeanMixin, ReapingMixin, SimpleWorker):
    """SimpleWorker (runs jobs in its own process) + the reaper, without RQ's repeated writes, preparing a job in one
    round trip, announcing job changes from a thread of its own."""


class ReapingForkWorker(LeanMixin, ReapingMixin, Worker):
    """RQ's forking Worker (a work horse process per job) + the reaper, without RQ's repeated writes."""


WORKER_CLASSES = {"simple": ReapingSimpleWorker, "fork": ReapingForkWorker}


def build_worker(worker_class: str | None = None, name: str | None = None) -> Worker:
    """A worker for this deployment's queue, configured from the app (call inside no context; builds the app)."""
    app = worker_app()
    if not app.config.get("REDIS_URL"):
        raise SystemExit("REDIS_URL is not set: jobs run inside the web process (embedded mode), no worker needed")
    cls = WORKER_CLASSES[worker_class or app.config["JOB_WORKER_CLASS"]]
    interval = max(1, int(app.config["JOB_REAPER_INTERVAL_SECONDS"]))
    with app.app_context():
        queue = rq_queue()
    # An idle worker blocks in BLPOP for worker_ttl - 15 s between maintenance passes; tie it to the interval.
    return cls([queue], connection=queue.connection, name=name, maintenance_interval=interval,
               worker_ttl=interval + 15, serializer=JSONSerializer)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workspace.jobs.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker-class", choices=sorted(WORKER_CLASSES), help="default: JOB_WORKER_CLASS")
    parser.add_argument("--name", help="worker name (default: RQ's random one)")
    parser.add_argument("--burst", action="store_true", help="quit when the queue is empty")
    parser.add_argument("--max-jobs", type=int, help="quit after this many jobs")
    args = parser.parse_args(argv)
    worker = build_worker(args.worker_class, args.name)
    worker.work(with_scheduler=True, burst=args.burst, max_jobs=args.max_jobs,
                logging_level=str(worker_app().config.get("LOG_LEVEL", "INFO")).upper())


if __name__ == "__main__":
    main()
