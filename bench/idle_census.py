"""What one idle authenticated socket holds, measured rather than guessed: N idle clients (js/bench/idle.js) on one
web process run as the Procfile runs it (plus bench/census_conf.py's census hook), a census at N and at 2N, and the
difference divided by N: RSS, the tracemalloc-traced heap by line, greenlets by what they run, objects by type.

    python bench/idle_census.py --n 1000 --mode eventlet [--frames 12]

tracemalloc (--frames > 0) costs memory of its own: read RSS figures from a run with --frames 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench")]

import realtime  # noqa: E402 - bench/realtime.py: the sandbox set-up, the web process and the idle clients
from sandbox import drop_sandbox, open_sandbox  # noqa: E402

from processes import BIN, start_web  # noqa: E402


def census(trigger: Path, label: str, timeout: float = 120) -> tuple[dict, Path]:
    trigger.write_text(label)
    report = Path(f"{trigger}.{label}.json")
    deadline = time.monotonic() + timeout
    while not report.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no census from the worker")
        time.sleep(0.2)
    time.sleep(0.2)
    return json.loads(report.read_text()), Path(f"{trigger}.{label}.snap")


def per_socket(a: dict, b: dict, n: int, key: str, top: int) -> list[tuple[str, float]]:
    rows = [(k, (b[key].get(k, 0) - a[key].get(k, 0)) / n) for k in set(a[key]) | set(b[key])]
    return sorted((r for r in rows if abs(r[1]) >= 0.01), key=lambda r: -abs(r[1]))[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--mode", default="eventlet")
    parser.add_argument("--frames", type=int, default=12, help="tracemalloc frames (0: off)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    realtime.raise_fd_limit()
    engine, schema, prefix, env = open_sandbox(realtime.PG_URL, realtime.REDIS_URL)
    workdir = Path(tempfile.mkdtemp(prefix="census-"))
    trigger = workdir / "trigger"
    proc = idle = None
    try:
        setup = realtime.prepare(realtime.schema_url(schema), env)
        env = {**env, "CENSUS_TRIGGER": str(trigger), "CENSUS_TRACEMALLOC": str(args.frames)}
        proc, base = start_web(env, async_mode=args.mode,
                               args=[str(BIN / "gunicorn"), "-c", str(ROOT / "bench" / "census_conf.py"), "wsgi:app"])
        idle = realtime.subprocess.Popen(["node", str(ROOT / "js" / "bench" / "idle.js"), base, setup["receiver"]],
                                         cwd=ROOT, stdin=realtime.subprocess.PIPE, stdout=realtime.subprocess.PIPE,
                                         text=True)

        def open_more(count: int) -> dict:
            idle.stdin.write(f"{count}\n")
            idle.stdin.flush()
            result = json.loads(idle.stdout.readline())
            time.sleep(2)
            return result

        empty, _ = census(trigger, "empty")
        first = open_more(args.n)
        a, snap_a = census(trigger, "a")
        second = open_more(args.n)
        b, snap_b = census(trigger, "b")
        n = second["connected"] - first["connected"]
        print(json.dumps({"mode": args.mode, "n": args.n, "first": first, "second": second,
                          "sockets": [empty.get("sockets"), a["sockets"], b["sockets"]]}))
        print(f"RSS: empty {empty['rss_kib']} KiB, at N {a['rss_kib']}, at 2N {b['rss_kib']}; "
              f"marginal {(b['rss_kib'] - a['rss_kib']) / n:.1f} KiB/socket, "
              f"overall {(b['rss_kib'] - empty['rss_kib']) / second['connected']:.1f}")
        print(f"greenlets: {empty['greenlet_count']} / {a['greenlet_count']} / {b['greenlet_count']} "
              f"({(b['greenlet_count'] - a['greenlet_count']) / n:.2f} per socket); gc objects per socket "
              f"{(b['objects'] - a['objects']) / n:.1f}")
        if "traced_kib" in b:
            print(f"traced heap per socket: {(b['traced_kib'] - a['traced_kib']) / n:.1f} KiB")
        print("\ngreenlets per socket:")
        for label, count in per_socket(a, b, n, "greenlets", args.top):
            print(f"  {count:6.2f}  {label}")
        print("\nobjects per socket by type:")
        for label, count in per_socket(a, b, n, "types", args.top):
            print(f"  {count:6.2f}  {label}")
        if args.frames:
            diff = tracemalloc.Snapshot.load(str(snap_b)).compare_to(tracemalloc.Snapshot.load(str(snap_a)), "lineno")
            total = sum(d.size_diff for d in diff)
            print(f"\ntraced bytes per socket by line (total {total / n:.0f} B):")
            for d in diff[:args.top]:
                print(f"  {d.size_diff / n:8.0f} B {d.count_diff / n:6.2f} blocks  {d.traceback[0]}")
            diff = tracemalloc.Snapshot.load(str(snap_b)).compare_to(tracemalloc.Snapshot.load(str(snap_a)),
                                                                      "traceback")
            print("\nlargest per-socket allocations, with their call chain:")
            for d in diff[:8]:
                print(f"  {d.size_diff / n:8.0f} B {d.count_diff / n:6.2f} blocks")
                for line in d.traceback.format()[-16:]:
                    print("      " + line)
    finally:
        if idle is not None:
            idle.stdin.close()
            idle.wait(60)
        if proc is not None:
            proc.stop()
        drop_sandbox(engine, schema, realtime.REDIS_URL, prefix)


if __name__ == "__main__":
    main()
