"""Co-editing benchmark: keystroke-to-remote latency with 2 and 50 editors in one document, ours (one gunicorn +
eventlet process, PostgreSQL + Redis) against the npm y-socket.io Node server (js/bench/ysocketio_server.mjs) on this
machine, driven by the same Node load generator (js/bench/coedit_load.mjs: npm `yjs` + `y-socket.io` clients);
then the load time of a document with 100,000 stored updates, before and after compaction.

    python bench/coedit.py            (or: make bench-coedit, which holds /tmp/workspace-bench.lock)
    python bench/coedit.py --quick    (fewer keystrokes, 20,000 stored updates: a smoke run)
    python bench/coedit.py --skip load --rounds 3   (Node and ours alternating three times: the median ratio)

Latency is measured from the local insert on one editor to the update applied in every other editor's Y.Doc (one
sample per keystroke and receiver); the editors type in turn, one keystroke every --interval ms in total, each
keystroke also moving the caret in awareness as CodeMirror does. Everything binds 127.0.0.1, every run is bounded,
and the schema and Redis keys are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests
import sqlalchemy as sa

# The sandbox set-up (schema, migrated app, owner + collaborator tokens) is the realtime benchmark's; imported
# before `tests/` joins sys.path (it has a `realtime` package of its own).
from realtime import node_reference, prepare, raise_fd_limit
from sandbox import drop_sandbox, open_sandbox

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from processes import start_web  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PATH = "bench/notes.md"


def load(url: str, room: str, tokens: list[str], editors: int, keystrokes: int, interval_ms: int,
         expect_length: int = 0) -> dict:
    timeout_s = 60 + keystrokes * interval_ms // 1000
    config = {"url": url, "room": room, "tokens": tokens, "editors": editors, "keystrokes": keystrokes,
              "intervalMs": interval_ms, "timeoutMs": timeout_s * 1000, "expectLength": expect_length}
    done = subprocess.run(["node", str(ROOT / "js" / "bench" / "coedit_load.mjs"), json.dumps(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout_s + 30)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": (done.stderr or done.stdout)[-500:]}


def create_file(base: str, token: str, project_id: int, path: str) -> None:
    response = requests.put(f"{base}/api/v1/projects/{project_id}/files/{path}", json={"content": ""},
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    response.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 keystrokes per run, 20,000 stored updates")
    parser.add_argument("--editors", default="2,50", help="editors per document, comma-separated")
    parser.add_argument("--keystrokes", type=int, default=None, help="measured keystrokes per run (default 500)")
    parser.add_argument("--interval", type=int, default=20, help="ms between two keystrokes (all editors together)")
    parser.add_argument("--updates", type=int, default=None, help="stored updates for the load run (default 100000)")
    parser.add_argument("--skip", default="", help="comma-separated: latency,load")
    parser.add_argument("--rounds", type=int, default=1,
                        help="latency runs per size, Node and ours alternating; the median ratio is reported too")
    args = parser.parse_args()
    sizes = [int(n) for n in args.editors.split(",")]
    keystrokes = args.keystrokes or (100 if args.quick else 500)
    stored = args.updates or (20_000 if args.quick else 100_000)
    skip = set(filter(None, args.skip.split(",")))
    raise_fd_limit()

    # Every keystroke moves the caret (awareness), faster than a person; and no compaction but the measured one.
    engine, schema, prefix, env = open_sandbox(
        os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"), REDIS_URL,
        COEDIT_AWARENESS_RATE_PER_SECOND="1000000", COEDIT_COMPACT_THRESHOLD=str(10**9))
    rows = []
    loads = None
    try:
        setup = prepare(env["DATABASE_URL"], env)
        tokens = [setup["sender"], setup["receiver"]]
        for round_ in range(args.rounds if "latency" not in skip else 0):
            for n in sizes:
                node, node_url = node_reference("ysocketio_server.mjs")
                try:
                    ref = load(node_url, f"{setup['project_id']}/ref-{n}-{round_}.md", tokens, n, keystrokes,
                               args.interval)
                finally:
                    node.terminate()
                    node.wait(10)
                print(json.dumps({"server": "y-socket.io (Node)", **ref}), flush=True)
                web, base = start_web(env)
                try:
                    path = f"{PATH.rsplit('.', 1)[0]}-{n}-{round_}.md"
                    create_file(base, setup["sender"], setup["project_id"], path)
                    ours = load(base, f"{setup['project_id']}/{path}", tokens, n, keystrokes, args.interval)
                finally:
                    web.stop()
                print(json.dumps({"server": "ours", **ours}), flush=True)
                rows.append((n, ref, ours))
        if "load" not in skip:
            loads = load_times(env, setup, stored)
    finally:
        drop_sandbox(engine, schema, REDIS_URL, prefix)

    print(f"\n{keystrokes} measured keystrokes per run, one every {args.interval} ms; "
          f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| editors | server | p50 ms | p99 ms | max ms | samples | converged | p99 ours / Node |")
    print("|---|---|---|---|---|---|---|---|")
    ratios: dict[int, list[float]] = {}
    for n, ref, ours in rows:
        ratio = (round(ours["p99_ms"] / ref["p99_ms"], 2) if ours.get("p99_ms") and ref.get("p99_ms") else None)
        ratios.setdefault(n, []).append(ratio if ratio is not None else float("inf"))
        for name, r, shown in (("y-socket.io (Node)", ref, ""), ("ours (gunicorn + eventlet)", ours, ratio)):
            print(f"| {n} | {name} | {r.get('p50_ms', r.get('error'))} | {r.get('p99_ms')} | {r.get('max_ms')} | "
                  f"{r.get('samples')}/{r.get('expected')} | {r.get('converged')} | {shown} |")
    if args.rounds > 1:
        for n, values in ratios.items():
            print(f"\n{n} editors: p99 ours / Node per round {values}, median {statistics.median(values)}")
    if loads:
        before, after = loads.get("before", {}), loads.get("after", {})
        print(f"\nload of a document with {stored} stored updates (fresh process, one editor's connect to synced, "
              f"median of 3): before compaction {before.get('median_ms', before)} ms, after "
              f"{after.get('median_ms', after)} ms; compaction took {loads.get('compaction_s')} s "
              f"({json.dumps(loads.get('compaction'))})")


def load_times(env: dict, setup: dict, stored: int, runs: int = 3) -> dict:
    """A document with `stored` updates (typing, one character per update, a deletion every 50th), written straight
    into its table: the time a fresh editor takes to sync it from a freshly started process (nothing cached), the
    median of `runs`, before and after the server's compaction (whose own time is reported too)."""
    path = "bench/history.md"
    web, base = start_web(env)
    try:
        create_file(base, setup["sender"], setup["project_id"], path)
    finally:
        web.stop()
    app = bench_app(env)
    started = time.monotonic()
    document_id, length = store_history(app, setup["project_id"], path, stored)
    result = {"stored_updates": stored, "write_s": round(time.monotonic() - started, 1)}
    room = f"{setup['project_id']}/{path}"

    def open_times() -> dict:
        samples = []
        for _ in range(runs):
            web, base = start_web(env)
            try:
                opened = load(base, room, [setup["sender"]], 1, 0, 0, expect_length=length)
            finally:
                web.stop()
            if "sync_ms" not in opened:
                return opened
            samples.append(opened["sync_ms"])
        return {"median_ms": sorted(samples)[len(samples) // 2], "samples_ms": samples, "length": opened["length"]}

    result["before"] = open_times()
    print(json.dumps({"load_before_compaction": result["before"]}), flush=True)
    with app.app_context():
        from workspace.documents.compaction import compact  # noqa: PLC0415 - the bench's in-process app only

        started = time.monotonic()
        result["compaction"] = compact(document_id)
        result["compaction_s"] = round(time.monotonic() - started, 2)
    result["after"] = open_times()
    print(json.dumps({"load_after_compaction": result["after"]}), flush=True)
    return result


def bench_app(env: dict):
    """The app in this process, on the benchmark's schema and Redis prefix, to write history and compact."""
    from workspace import create_app  # noqa: PLC0415 - after prepare() set the environment it reads

    return create_app({"SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"], "REDIS_URL": REDIS_URL,
                       "REDIS_KEY_PREFIX": env["REDIS_KEY_PREFIX"]})


def store_history(app, project_id: int, path: str, count: int) -> tuple[int, int]:
    """`count` single-keystroke Yjs updates made with pycrdt, stored as the document's history; its id and the
    length of its text."""
    from pycrdt import Doc, Text  # noqa: PLC0415 - the server's CRDT library, as the document store uses it

    from workspace.extensions import db  # noqa: PLC0415
    from workspace.models import Document, DocumentUpdate  # noqa: PLC0415

    doc = Doc()
    text = doc.get("content", type=Text)
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    for i in range(count):
        if i % 50 == 49:
            del text[len(text) - 1]
        else:
            text.insert(len(text), "\n" if i % 60 == 59 else chr(97 + i % 26))
    doc.unobserve(subscription)
    length = len(str(text))
    with app.app_context():
        document = db.session.scalars(sa.select(Document).where(Document.project_id == project_id,
                                                                  Document.path == path)).one_or_none()
        if document is None:
            document = Document(project_id=project_id, path=path, snapshot_upto=0, update_count=0)
            db.session.add(document)
            db.session.flush()
        for start in range(0, len(updates), 5000):
            db.session.execute(sa.insert(DocumentUpdate), [{"document_id": document.id, "data": update}
                                                           for update in updates[start:start + 5000]])
        document.update_count += len(updates)
        db.session.commit()
        document_id = document.id
        db.session.remove()
    return document_id, length


if __name__ == "__main__":
    main()
