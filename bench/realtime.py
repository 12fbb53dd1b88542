"""Socket.IO fan-out and capacity benchmark: ours (gunicorn + eventlet or gevent, one or two processes with the
Redis queue) beside (b) a minimal Flask-SocketIO relay on the same Redis queue under the same worker class
(bench/relay_app.py) and (c) a minimal Node socket.io server, all driven by the same Node load generator.

    python bench/realtime.py                 (or: make bench-realtime, which holds /tmp/workspace-bench.lock)
    python bench/realtime.py --quick         (N=100 only, fewer events: a smoke run)

Fan-out: one room of N receivers (100, 500) + one sender keeping 32 acked events in flight; COUNT small
CURSOR_UPDATEs (throttle raised for the run), then separately FILE_CHANGEs (persisted by ours, only relayed by
Node); delivered messages/s, p50/p99 latency (js/bench/fanout.js; clients offer permessage-deflate as browsers do).
Capacity: K idle clients (default 10,000) on one process per worker class (js/bench/idle.js) and the worker's RSS
growth per connection. Everything is bounded (timeouts on every run), binds 127.0.0.1 only, raises the fd limit
for itself and its children, and drops its schema and Redis keys at the end. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import requests
from sandbox import drop_sandbox, open_sandbox

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from processes import BIN, free_port, start, start_web, wait_http  # noqa: E402

PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def schema_url(schema: str) -> str:
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"


def prepare(url: str, env: dict[str, str]) -> dict:
    """Migrate, then create a sender (owner) and a receiver (collaborator) of one project; return their tokens."""
    os.environ.update({k: env[k] for k in ("APP_ENV", "SECRET_KEY", "JWT_SECRET_KEY")})
    from flask_migrate import upgrade

    from workspace import create_app
    from workspace.auth import service, tokens
    from workspace.extensions import db
    from workspace.models import Membership, Project, Role

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": REDIS_URL,
                      "REDIS_KEY_PREFIX": env["REDIS_KEY_PREFIX"], "ARGON2_TIME_COST": 1,
                      "ARGON2_MEMORY_KIB": 1024, "ACCESS_TOKEN_MINUTES": 600})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        sender = service.signup("sender@example.com", "benchmark password", "Sender")
        receiver = service.signup("receiver@example.com", "benchmark password", "Receiver")
        project = Project(name="bench", owner_id=sender.id)
        db.session.add(project)
        db.session.flush()
        db.session.add_all([Membership(project_id=project.id, user_id=sender.id, role=Role.OWNER),
                            Membership(project_id=project.id, user_id=receiver.id, role=Role.COLLABORATOR)])
        db.session.commit()
        result = {"sender": tokens.issue_pair(sender)["access_token"],
                  "receiver": tokens.issue_pair(receiver)["access_token"], "project_id": project.id}
        db.session.remove()
        db.engine.dispose()
    return result


def node_reference(script: str = "node_reference_server.js") -> tuple[subprocess.Popen, str]:
    """A Node peer server from js/bench/ on a free port, once it listens; the process and its URL."""
    port = free_port()
    proc = subprocess.Popen(["node", str(ROOT / "js" / "bench" / script), str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()  # {"listening": port}
    return proc, f"http://127.0.0.1:{port}"


def relay(env: dict, mode: str):
    """Peer (b): the minimal Flask-SocketIO relay (bench/relay_app.py) on the same Redis queue, same worker class."""
    port = free_port()
    # -c /dev/null: not the product's gunicorn.conf.py (its hooks start the product's realtime runtime).
    proc = start([str(BIN / "gunicorn"), "-c", "/dev/null", "-k", mode, "-w", "1", "--worker-connections", "20000",
                  "--backlog", "2048",
                  "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT / "bench"), "relay_app:app"],
                 {**env, "BENCH_REDIS_URL": REDIS_URL, "BENCH_CHANNEL": env["REDIS_KEY_PREFIX"] + "relay",
                  "BENCH_ASYNC_MODE": mode},
                 f"relay-{mode}")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/socket.io/?EIO=4&transport=polling", proc=proc)
    return proc, base


def fanout(urls: list[str], setup: dict, n: int, count: int, event: str, timeout_s: int) -> dict:
    config = {"urls": urls, "senderToken": setup["sender"], "receiverToken": setup["receiver"],
              "projectId": setup["project_id"], "n": n, "count": count, "event": event, "window": 32,
              "timeoutMs": timeout_s * 1000}
    done = subprocess.run(["node", str(ROOT / "js" / "bench" / "fanout.js"), json.dumps(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout_s + 120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": done.stderr[-500:] or done.stdout[-500:]}


def ratio(result: dict | None, peer: dict | None) -> float | None:
    if result and peer and result.get("per_second") and peer.get("per_second"):
        return round(result["per_second"] / peer["per_second"], 2)
    return None


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def capacity(env: dict, setup: dict, k: int, mode: str) -> dict:
    """Open k/2 idle clients, read the worker's RSS, open k/2 more, read it again: the marginal memory per
    connection (the first half also pays for allocator growth and one-off imports, so it is reported apart)."""
    proc, base = start_web(env, async_mode=mode)
    try:
        pid = worker_pid(proc.pid)
        before = rss_kib(pid)
        idle = subprocess.Popen(["node", str(ROOT / "js" / "bench" / "idle.js"), base, setup["receiver"]], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

        def open_more(count: int) -> dict:
            idle.stdin.write(f"{count}\n")
            idle.stdin.flush()
            line = idle.stdout.readline()
            time.sleep(2)  # let the handshakes' garbage settle before reading RSS (no event marks "idle")
            return json.loads(line) if line.startswith("{") else {"connected": 0, "failed": count}

        first = open_more(k // 2)
        middle = rss_kib(pid)
        held = open_more(k - k // 2)
        after = rss_kib(pid)
        started = time.monotonic()
        try:  # a process that holds its sockets but cannot answer is a result to report, not a crash
            health = requests.get(base + "/healthz", timeout=10).status_code
        except requests.RequestException as exc:
            health = type(exc).__name__
        health_ms = (time.monotonic() - started) * 1000
        idle.stdin.close()
        idle.wait(60)
        connected = held.get("connected", 0)
        second_half = connected - first.get("connected", 0)
        return {"mode": mode, "clients": k, "connected": connected, "failed": held.get("failed"),
                "errors": held.get("errors"),
                "rss_before_mib": round(before / 1024, 1), "rss_after_mib": round(after / 1024, 1),
                "kib_per_connection_overall": round((after - before) / connected, 1) if connected else None,
                "kib_per_connection_marginal": round((after - middle) / second_half, 1) if second_half else None,
                "healthz_status": health, "healthz_ms_while_holding": round(health_ms, 1)}
    finally:
        proc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N=100 only, 500 events, 1,000 idle clients")
    parser.add_argument("--sizes", default=None, help="room sizes, comma-separated (default 100,500)")
    parser.add_argument("--count", type=int, default=None, help="events per run (default 2000)")
    parser.add_argument("--file-count", type=int, default=None, help="FILE_CHANGEs per run (default: --count)")
    parser.add_argument("--modes", default="eventlet,gevent")
    parser.add_argument("--idle", type=int, default=None, help="idle clients for the capacity run (default 10000)")
    parser.add_argument("--skip", default="", help="comma-separated: fanout,files,two,capacity")
    args = parser.parse_args()
    sizes = [int(s) for s in (args.sizes or ("100" if args.quick else "100,500")).split(",")]
    count = args.count or (500 if args.quick else 2000)
    idle_k = args.idle or (1000 if args.quick else 10000)
    skip = set(filter(None, args.skip.split(",")))
    fd_limit = raise_fd_limit()

    engine, schema, prefix, env = open_sandbox(PG_URL, REDIS_URL, CURSOR_RATE_PER_SECOND="1000000")
    rows = []
    try:
        setup = prepare(schema_url(schema), env)
        events = [e for e, key in (("CURSOR_UPDATE", "fanout"), ("FILE_CHANGE", "files")) if key not in skip]
        for event in events:
            per_run = (args.file_count or count) if event == "FILE_CHANGE" else count
            for n in sizes:
                timeout_s = 60 + n * per_run // 5000
                node, node_url = node_reference()
                try:
                    ref = fanout([node_url], setup, n, per_run, event, timeout_s)
                finally:
                    node.terminate()
                    node.wait(10)
                rows.append(("node socket.io", 1, event, n, ref, None, None))
                print(json.dumps(rows[-1][:5]), flush=True)
                for mode in args.modes.split(","):
                    peer = None
                    if event == "CURSOR_UPDATE":  # the relay only relays cursors (nothing to persist)
                        proc, base = relay(env, mode)
                        try:
                            peer = fanout([base], setup, n, per_run, event, timeout_s)
                        finally:
                            proc.stop()
                        rows.append((f"flask-socketio relay {mode}", 1, event, n, peer, ratio(peer, ref), None))
                        print(json.dumps(rows[-1]), flush=True)
                    for procs in ((1,) if "two" in skip else (1, 2)):
                        webs = [start_web(env, async_mode=mode) for _ in range(procs)]
                        try:
                            result = fanout([base for _, base in webs], setup, n, per_run, event, timeout_s)
                        finally:
                            for proc, _ in webs:
                                proc.stop()
                        rows.append((f"ours {mode}", procs, event, n, result, ratio(result, ref),
                                     ratio(result, peer) if procs == 1 else None))
                        print(json.dumps(rows[-1]), flush=True)
        caps = [] if "capacity" in skip else [capacity(env, setup, idle_k, mode) for mode in args.modes.split(",")]
    finally:
        drop_sandbox(engine, schema, REDIS_URL, prefix)

    print(f"\nfd limit {fd_limit}; {count} cursor / {args.file_count or count} file events per run; "
          f"load average at the end: {os.getloadavg()}")
    print("| server | processes | event | N | delivered/s | p50 ms | p99 ms | delivered | vs Node | vs relay |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for server, procs, event, n, r, to_node, to_relay in rows:
        print(f"| {server} | {procs} | {event} | {n} | {r.get('per_second', r.get('error'))} | {r.get('p50_ms')} | "
              f"{r.get('p99_ms')} | {r.get('delivered')}/{r.get('expected')} | {to_node or ''} | {to_relay or ''} |")
    for cap in caps:
        print(f"\ncapacity: {json.dumps(cap)}")

if __name__ == "__main__":
    main()
