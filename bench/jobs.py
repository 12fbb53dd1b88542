"""Jobs benchmark, every peer in the same run: the Procfile's worker (`python -m workspace.jobs.worker`) draining
echo jobs against a bare RQ SimpleWorker draining echo jobs (same venv, same JSON serializer; RQ's result kept 60 s),
`POST /jobs/run` p50 against `GET /auth/me` p50 on the same web process (interleaved), and the time from submit to
`JOB_UPDATE succeeded` at a Socket.IO client. Targets (issue 13): worker >= 0.8x bare RQ; POST /jobs/run p50 <= 3x
GET /auth/me p50.

    python bench/jobs.py [--jobs 1000] [--submits 500] [--roundtrips 100] [--rounds 2]      (make bench-jobs)

Needs PostgreSQL and Redis as the tests do (TEST_DATABASE_URL / TEST_REDIS_URL); uses a schema and a Redis prefix
of its own, dropped afterwards; binds 127.0.0.1 only; every phase is bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from processes import free_port, start, start_web  # noqa: E402

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PHASE_TIMEOUT = 300


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Bench:
    def __init__(self) -> None:
        self.schema = f"bench_jobs_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        self.db_url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{self.schema}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_", "COVERAGE"))}
        self.env.update({
            "APP_ENV": "testing", "DATABASE_URL": self.db_url, "REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": self.prefix,
            "SOCKETIO_CHANNEL": self.prefix + "socketio", "RQ_QUEUE": self.prefix + "jobs",
            "SECRET_KEY": "bench-secret-key-0123456789", "JWT_SECRET_KEY": "bench-jwt-secret-0123456789",
            "RATELIMIT_ENABLED": "false", "LOG_LEVEL": "WARNING", "JOB_MAX_IN_FLIGHT_PER_USER": "0",
        })
        os.environ.update(self.env)
        from flask_migrate import upgrade

        from workspace import create_app

        self.engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with self.engine.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
        self.app = create_app()
        with self.app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
        self.user, self.project_id = self._team()
        self.procs = []

    def _team(self):
        from workspace.auth import service, tokens
        from workspace.extensions import db
        from workspace.models import Membership, Project, Role

        with self.app.app_context():
            user = service.signup(f"bench-{uuid.uuid4().hex[:6]}@example.com", "correct horse battery", "Bench")
            project = Project(name="bench", description="", owner_id=user.id)
            db.session.add(project)
            db.session.flush()
            db.session.add(Membership(project_id=project.id, user_id=user.id, role=Role.OWNER))
            db.session.commit()
            return {"id": user.id, "access": tokens.issue_pair(user)["access_token"]}, project.id

    def submit_many(self, count: int) -> list[int]:
        from workspace.jobs import service

        with self.app.app_context():
            return [service.submit(self.user["id"], self.project_id, "echo", {"n": n})[0].id for n in range(count)]

    def wait_done(self, ids: list[int], timeout: float = PHASE_TIMEOUT) -> None:
        from workspace.extensions import db
        from workspace.models import Job, JobStatus

        deadline = time.monotonic() + timeout
        with self.app.app_context():
            while time.monotonic() < deadline:
                left = db.session.scalar(sa.select(sa.func.count()).where(
                    Job.id.in_(ids), Job.status != JobStatus.SUCCEEDED))
                db.session.rollback()
                if not left:
                    return
                time.sleep(0.2)
        raise TimeoutError(f"{left} jobs still unfinished after {timeout}s")

    def span(self, ids: list[int]) -> float:
        """Seconds from the first job's start to the last job's finish, from the rows' timestamps."""
        from workspace.extensions import db
        from workspace.models import Job

        with self.app.app_context():
            first, last = db.session.execute(sa.select(sa.func.min(Job.started_at), sa.func.max(Job.finished_at))
                                             .where(Job.id.in_(ids))).one()
        return (last - first).total_seconds()

    def worker(self, worker_class: str, burst: bool = True, checkout: str | None = None):
        """The Procfile's worker; from the checkout in `checkout` (its `workspace` and `config`) when given."""
        env, isolate = self.env, []
        if checkout:  # -P: the current directory (this checkout) is not put first on sys.path
            env, isolate = {**self.env, "PYTHONPATH": str(Path(checkout).resolve())}, ["-P"]
        proc = start([sys.executable, *isolate, "-m", "workspace.jobs.worker", "--worker-class", worker_class,
                      "--name", f"bench-{worker_class}-{uuid.uuid4().hex[:6]}", *(["--burst"] if burst else [])],
                     env, f"bench-worker-{worker_class}")
        self.procs.append(proc)
        return proc

    def bare_rq(self, jobs: int) -> float:
        """The peer: RQ alone, a SimpleWorker draining echo jobs (`dict(payload)` returns a copy of the payload) with
        the JSON serializer and log level ours use, RQ's result kept 60 s (ours keep none: the row holds it); no
        database, no events. Jobs/min from RQ's own timestamps."""
        import redis
        from rq import Queue
        from rq.registry import FinishedJobRegistry
        from rq.serializers import JSONSerializer

        # A queue of its own per round: RQ keeps finished jobs in its registry for their result TTL.
        queue = Queue(f"{self.prefix}bare-{uuid.uuid4().hex[:6]}", connection=redis.Redis.from_url(REDIS_URL),
                      serializer=JSONSerializer)
        ids = [queue.enqueue("builtins.dict", {"n": n}, result_ttl=60).id for n in range(jobs)]
        # Logging at our worker's level (LOG_LEVEL): RQ's default INFO writes three lines per job.
        proc = start([sys.executable, "-m", "rq.cli", "worker", "--burst", "-w", "rq.SimpleWorker",
                      "--serializer", "rq.serializers.JSONSerializer", "--url", REDIS_URL,
                      "--logging_level", self.env["LOG_LEVEL"],
                      "--name", f"bench-bare-{uuid.uuid4().hex[:6]}", queue.name], self.env, "bench-bare")
        self.procs.append(proc)
        proc.popen.wait(PHASE_TIMEOUT)
        finished = FinishedJobRegistry(queue=queue).get_job_ids()
        assert len(finished) == jobs, f"{len(finished)}/{jobs} bare jobs finished"
        first = queue.fetch_job(ids[0]).started_at
        last = queue.fetch_job(ids[-1]).ended_at
        for job_id in ids:
            queue.connection.delete(f"rq:job:{job_id}", f"rq:results:{job_id}")
        queue.delete(delete_jobs=True)
        return (jobs - 1) / (last - first).total_seconds() * 60

    def throughput(self, jobs: int, checkout: str | None = None) -> float:
        """The Procfile's worker (SimpleWorker, the production default) draining echo jobs submitted beforehand;
        jobs/min from the rows' timestamps (first claim to last completion)."""
        ids = self.submit_many(jobs)
        proc = self.worker("simple", checkout=checkout)
        self.wait_done(ids)
        proc.stop()
        return (len(ids) - 1) / self.span(ids) * 60

    def request_latency(self, base: str, count: int) -> tuple[list[float], list[float]]:
        """POST /jobs/run and GET /auth/me, one after the other over one connection each, `count` times."""
        session = requests.Session()
        headers = {"Authorization": f"Bearer {self.user['access']}"}
        body = {"project_id": self.project_id, "type": "echo", "payload": {"hello": "world"}}

        def post() -> None:
            session.post(f"{base}/api/v1/jobs/run", json=body, headers=headers, timeout=10).raise_for_status()

        def me() -> None:
            session.get(f"{base}/api/v1/auth/me", headers=headers, timeout=10).raise_for_status()

        for _ in range(20):  # warm-up: connections, caches
            post()
            me()
        runs, mes = [], []
        for _ in range(count):
            for call, times in ((post, runs), (me, mes)):
                t0 = time.perf_counter()
                call()
                times.append((time.perf_counter() - t0) * 1000)
        return runs, mes

    def roundtrips(self, base: str, count: int) -> list[float]:
        import socketio

        sio = socketio.SimpleClient()
        sio.connect(base, auth={"token": self.user["access"]}, transports=["websocket"], wait_timeout=10)
        session = requests.Session()
        headers = {"Authorization": f"Bearer {self.user['access']}"}
        times = []
        try:
            ack = sio.call("join", {"project_id": self.project_id}, timeout=10)
            assert ack.get("ok"), ack
            for n in range(count + 1):  # the first one (untimed) waits for the worker to come up
                t0 = time.perf_counter()
                job_id = session.post(f"{base}/api/v1/jobs/run", headers=headers, timeout=10, json={
                    "project_id": self.project_id, "type": "echo", "payload": {"n": n}}).json()["job_id"]
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    event, data = sio.receive(timeout=30)
                    if event == "JOB_UPDATE" and data["job_id"] == job_id and data["status"] == "succeeded":
                        if n:
                            times.append((time.perf_counter() - t0) * 1000)
                        break
        finally:
            sio.disconnect()
        return times

    def close(self) -> None:
        import redis

        for proc in self.procs:
            proc.stop()
        from workspace.extensions import db

        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()
        with self.engine.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=self.prefix + "*", count=1000))
        keys += list(client.scan_iter(match=f"rq:*{self.prefix}*", count=1000))
        if keys:
            client.delete(*keys)


def web_figures(bench: Bench, args: argparse.Namespace) -> None:
    """`POST /jobs/run` against `GET /auth/me`, then submit → JOB_UPDATE succeeded, on one web process."""
    web, base = start_web(bench.env, port=free_port())
    bench.procs.append(web)
    runs, mes = bench.request_latency(base, args.submits)
    print(f"POST /jobs/run: p50 {pct(runs, 50):.2f} ms, p99 {pct(runs, 99):.2f} ms; GET /auth/me: p50 "
          f"{pct(mes, 50):.2f} ms, p99 {pct(mes, 99):.2f} ms ({args.submits} each, interleaved, one connection, "
          f"eventlet gunicorn): {pct(runs, 50) / pct(mes, 50):.2f}x (target <= 3x)")
    bench.worker("simple", burst=False)
    trips = bench.roundtrips(base, args.roundtrips)
    print(f"submit → JOB_UPDATE succeeded: p50 {pct(trips, 50):.1f} ms, p99 {pct(trips, 99):.1f} ms "
          f"({len(trips)} jobs, one simple worker)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="echo jobs per worker run")
    parser.add_argument("--rounds", type=int, default=2, help="worker runs, alternating bare RQ and ours")
    parser.add_argument("--submits", type=int, default=500, help="timed POST /jobs/run (and as many GET /auth/me)")
    parser.add_argument("--roundtrips", type=int, default=100, help="timed submit → JOB_UPDATE succeeded")
    parser.add_argument("--baseline", metavar="DIR", help="also run the Procfile worker of the checkout in DIR "
                        "(e.g. `git worktree add /tmp/base HEAD~1`) in every round: an A/B in one run (the jobs "
                        "are enqueued by this checkout, with its enqueue options)")
    parser.add_argument("--worker-only", action="store_true", help="skip the web figures")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)")
    bench = Bench()
    try:
        ratios, base_ratios = [], []
        for round_ in range(1, args.rounds + 1):
            bare = bench.bare_rq(args.jobs)
            ours = bench.throughput(args.jobs)
            ratios.append(ours / bare)
            print(f"round {round_}: Procfile worker {ours:7.0f} echo jobs/min, bare RQ SimpleWorker {bare:7.0f}/min "
                  f"({args.jobs} jobs each): {ours / bare:.2f}x (target >= 0.8x)")
            if args.baseline:
                base = bench.throughput(args.jobs, checkout=args.baseline)
                base_ratios.append(base / bare)
                print(f"round {round_}: baseline worker ({args.baseline}) {base:7.0f} echo jobs/min: "
                      f"{base / bare:.2f}x bare RQ, this checkout {ours / base:.2f}x the baseline")
        print(f"worker / bare RQ, median of {len(ratios)}: {sorted(ratios)[len(ratios) // 2]:.2f}x")
        if base_ratios:
            print(f"baseline / bare RQ, median: {sorted(base_ratios)[len(base_ratios) // 2]:.2f}x")
        if not args.worker_only:
            web_figures(bench, args)
    finally:
        bench.close()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
