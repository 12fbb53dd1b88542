"""The abuse mix of issue 13 against ONE web process: does anyone else notice?

    python bench/abuse.py [--async-mode eventlet|gevent]            (or: make bench-abuse)

Seeds a fresh PostgreSQL schema (an owner, a member, a project; passwords hashed at the production Argon2 cost),
starts ONE gunicorn web process exactly as the Procfile runs it (127.0.0.1 only, the login rate limit and the
per-account backoff raised so every bad login reaches the hash), and then, each role in its own OS process so the
load generator's GIL cannot blur the figures:

- a poller GETs /healthz every 10 ms for the whole window (max and p99 latency; target: every answer within 250 ms);
- the owner sends FILE_CHANGE every 50 ms over Socket.IO (acked ok / total, any other codes; target: all ok);
- one second in, three clients that never log in each send one 3 MiB websocket frame, eight wrong-password logins
  run at once, and the member emits 2,000 CURSOR_UPDATEs without waiting for acks.

Everything is bounded in count and time; the schema and the Redis keys are removed at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import requests
import socketio
import sqlalchemy as sa
import websocket
from rest_api import PG_URL, REDIS_URL, bench_env, schema_url
from sandbox import drop_sandbox

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from processes import start_web  # noqa: E402

WINDOW = 8.0  # seconds the poller and the FILE_CHANGE sender run
ABUSE_AT = 1.0  # seconds into the window the abuse starts
FRAME = 3 * 1024 * 1024
BAD_LOGINS, BIG_FRAMES, CURSORS = 8, 3, 2_000
PASSWORD = "the right password, long enough"


def prepare(url: str, env: dict[str, str]) -> dict:
    """Migrate and seed the schema at the production Argon2 cost; tokens for the owner and the member."""
    os.environ.update({k: env[k] for k in ("APP_ENV", "SECRET_KEY", "JWT_SECRET_KEY")})
    from flask_migrate import upgrade

    from workspace import create_app
    from workspace.auth import service, tokens
    from workspace.extensions import db
    from workspace.projects import service as projects

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": REDIS_URL,
                      "REDIS_KEY_PREFIX": env["REDIS_KEY_PREFIX"]})
    assert app.config["ARGON2_MEMORY_KIB"] == 65536, "bad logins must pay the production hash"
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        owner = service.signup("owner@example.com", PASSWORD, "Owner")
        member = service.signup("member@example.com", PASSWORD, "Member")
        project_id = projects.create(owner.id, "Abuse")["id"]
        db.session.execute(sa.text("INSERT INTO memberships (project_id, user_id, role, added_at) "
                                   "VALUES (:p, :u, 'collaborator', now())"), {"p": project_id, "u": member.id})
        db.session.commit()
        seeded = {"project_id": project_id, "owner": tokens.issue_pair(owner)["access_token"],
                  "member": tokens.issue_pair(member)["access_token"]}
        db.engine.dispose()
    return seeded


# --- the roles, each run in its own process; `start` is the shared monotonic start time --------------------------

def poll_health(base: str, start: float, out: mp.Queue) -> None:
    session, latencies, failures = requests.Session(), [], Counter()
    while time.monotonic() < start:
        time.sleep(0.001)
    while time.monotonic() - start < WINDOW:
        began = time.monotonic()
        try:
            status = session.get(base + "/healthz", timeout=10).status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        latencies.append((time.monotonic() - began) * 1000)
        if status != 200:
            failures[str(status)] += 1
        time.sleep(max(0.0, 0.010 - (time.monotonic() - began)))
    out.put(("health", {"latencies": latencies, "failures": dict(failures)}))


def joined_client(base: str, token: str, project_id: int) -> socketio.Client:
    sio = socketio.Client(reconnection=False)
    sio.connect(base, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    ack = sio.call("join", {"project_id": project_id}, timeout=10)
    assert ack.get("ok"), ack
    return sio


def code_of(ack) -> str:
    if isinstance(ack, dict) and ack.get("ok"):
        return "ok"
    return (ack or {}).get("error", {}).get("code", repr(ack)) if isinstance(ack, dict) else repr(ack)


def send_file_changes(base: str, token: str, project_id: int, start: float, out: mp.Queue) -> None:
    sio = joined_client(base, token, project_id)
    codes, lock, latencies, sent = Counter(), threading.Lock(), [], 0
    while time.monotonic() < start:
        time.sleep(0.001)
    while time.monotonic() - start < WINDOW:
        began = time.monotonic()

        def acked(ack=None, began=began):
            with lock:
                codes[code_of(ack)] += 1
                latencies.append((time.monotonic() - began) * 1000)

        sio.emit("FILE_CHANGE", {"project_id": project_id, "path": "notes.txt", "content": f"edit {sent}"},
                 callback=acked)
        sent += 1
        time.sleep(max(0.0, 0.050 - (time.monotonic() - began)))
    deadline = time.monotonic() + 10
    while sum(codes.values()) < sent and time.monotonic() < deadline:
        time.sleep(0.05)
    sio.disconnect()
    with lock:
        out.put(("file_change", {"sent": sent, "codes": dict(codes), "latencies": list(latencies)}))


def flood_cursors(base: str, token: str, project_id: int, start: float, out: mp.Queue) -> None:
    sio = joined_client(base, token, project_id)
    codes, lock = Counter(), threading.Lock()

    def acked(ack=None):
        with lock:
            codes[code_of(ack)] += 1

    while time.monotonic() < start + ABUSE_AT:
        time.sleep(0.001)
    for i in range(CURSORS):
        sio.emit("CURSOR_UPDATE", {"project_id": project_id, "path": "notes.txt", "line": i, "column": 1},
                 callback=acked)
    deadline = time.monotonic() + WINDOW + 5
    while sum(codes.values()) < CURSORS and time.monotonic() < deadline:
        time.sleep(0.05)
    sio.disconnect()
    with lock:
        out.put(("cursors", {"codes": dict(codes)}))


def big_frame(base: str, start: float, out: mp.Queue) -> None:
    """One Engine.IO websocket that never sends a CONNECT, then one 3 MiB frame; how the server answered."""
    ws = websocket.create_connection(base.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket", timeout=10)
    assert ws.recv().startswith("0{")
    while time.monotonic() < start + ABUSE_AT:
        time.sleep(0.001)
    outcome, began = "no close", time.monotonic()
    try:
        ws.send_binary(b"x" * FRAME)
        ws.settimeout(20)  # a frame within the cap is read; the socket then closes for lack of a CONNECT (10 s)
        opcode, frame = ws.recv_data_frame(control_frame=True)
        while opcode != websocket.ABNF.OPCODE_CLOSE:
            opcode, frame = ws.recv_data_frame(control_frame=True)
        outcome = f"closed {int.from_bytes(frame.data[:2], 'big')} after {time.monotonic() - began:.1f} s"
    except (OSError, websocket.WebSocketException) as exc:  # the server may close before the frame is all out
        outcome = f"{type(exc).__name__} after {time.monotonic() - began:.1f} s"
    finally:
        ws.close()
    out.put(("frame", outcome))


def bad_logins(base: str, start: float, out: mp.Queue) -> None:
    results, lock = [], threading.Lock()

    def login():
        began = time.monotonic()
        status = requests.post(base + "/api/v1/auth/login", timeout=30,
                               json={"email": "member@example.com", "password": "wrong password"}).status_code
        with lock:
            results.append((status, (time.monotonic() - began) * 1000))

    while time.monotonic() < start + ABUSE_AT:
        time.sleep(0.001)
    threads = [threading.Thread(target=login) for _ in range(BAD_LOGINS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(35)
    out.put(("logins", results))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def run_mix(base: str, seeded: dict) -> dict:
    out: mp.Queue = mp.get_context("fork").Queue()
    start = time.monotonic() + 3  # every role connected and joined before the window opens
    pid, ctx = seeded["project_id"], mp.get_context("fork")
    roles = [ctx.Process(target=poll_health, args=(base, start, out)),
             ctx.Process(target=send_file_changes, args=(base, seeded["owner"], pid, start, out)),
             ctx.Process(target=flood_cursors, args=(base, seeded["member"], pid, start, out)),
             ctx.Process(target=bad_logins, args=(base, start, out)),
             *[ctx.Process(target=big_frame, args=(base, start, out)) for _ in range(BIG_FRAMES)]]
    for role in roles:
        role.start()
    results: dict = {"frame": []}
    try:
        for _ in roles:
            name, value = out.get(timeout=WINDOW + 60)
            if name == "frame":
                results["frame"].append(value)
            else:
                results[name] = value
    finally:
        for role in roles:
            role.join(5)
            if role.is_alive():
                role.kill()
    return results


def report(results: dict, mode: str, load: str, load_after: str) -> bool:
    health, files = results["health"]["latencies"], results["file_change"]
    ok = files["codes"].get("ok", 0)
    health_max, health_p99 = max(health), percentile(health, 99)
    logins = results["logins"]
    passed_health = health_max <= 250 and not results["health"]["failures"]
    passed_files = ok == files["sent"]
    print(f"\none {mode} web process; load average {load} at the start, {load_after} at the end; "
          f"{WINDOW:.0f} s window, abuse from {ABUSE_AT:.0f} s\n")
    print("| what | figure |\n|---|---|")
    print(f"| /healthz polls | {len(health)}, failures {results['health']['failures'] or 'none'} |")
    print(f"| /healthz p50 / p99 / max ms | {percentile(health, 50):.1f} / {health_p99:.1f} / {health_max:.1f} |")
    print(f"| FILE_CHANGE acked ok / sent | {ok} / {files['sent']} (codes {files['codes']}) |")
    if files["latencies"]:
        print(f"| FILE_CHANGE ack p50 / max ms | {percentile(files['latencies'], 50):.1f} / "
              f"{max(files['latencies']):.1f} |")
    print(f"| CURSOR_UPDATE flood acks | {results['cursors']['codes']} |")
    print(f"| 3 MiB frames | {', '.join(sorted(results['frame']))} |")
    print(f"| bad logins (status: count) | {dict(Counter(s for s, _ in logins))}, slowest "
          f"{max(ms for _, ms in logins):.0f} ms |")
    print("\n| target | value | result |\n|---|---|---|")
    print(f"| /healthz answers within 250 ms | max {health_max:.0f} ms | {'pass' if passed_health else 'FAIL'} |")
    print(f"| FILE_CHANGE all acked ok | {ok}/{files['sent']} | {'pass' if passed_files else 'FAIL'} |")
    return passed_health and passed_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--async-mode", default="eventlet", choices=["eventlet", "gevent"])
    options = parser.parse_args()

    schema = f"bench_abuse_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    prefix = f"bench:{schema}:"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    env = {**bench_env(schema, prefix), "AUTH_RATE_LIMIT": "1000 per minute",
           "LOGIN_FAILURES_BEFORE_BACKOFF": "1000"}
    load = Path("/proc/loadavg").read_text().split()[0]
    proc = None
    try:
        seeded = prepare(schema_url(schema), env)
        proc, base = start_web(env, async_mode=options.async_mode)
        results = run_mix(base, seeded)
    finally:
        if proc is not None:
            proc.stop()
        drop_sandbox(admin, schema, REDIS_URL, prefix)
    passed = report(results, options.async_mode, load, Path("/proc/loadavg").read_text().split()[0])
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
