"""gunicorn settings for measuring what an idle socket holds: the product's gunicorn.conf.py, plus a census the
worker takes whenever the file named by CENSUS_TRIGGER appears (it writes the report to CENSUS_TRIGGER + ".json"
and removes the trigger). Used by bench/idle_census.py; never by the product.

The census: the Python heap traced by tracemalloc (CENSUS_TRACEMALLOC frames, 0 = off) grouped by line, the live
greenlets grouped by what they run, gc-tracked objects by type, and the worker's RSS.
"""

import json
import os
from pathlib import Path

_conf = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
exec(compile(_conf.read_text(), str(_conf), "exec"))  # noqa: S102 - the product's settings, unchanged

_product_post_worker_init = post_worker_init  # noqa: F821 - defined by the exec above


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _greenlet_label(g) -> str:
    frame = getattr(g, "gr_frame", None)
    frames = []
    while frame is not None:
        frames.append(f"{frame.f_code.co_name}:{Path(frame.f_code.co_filename).name}")
        frame = frame.f_back
    if not frames:
        return type(g).__name__ + (" (dead)" if g.dead else " (not started)")
    # outermost first: what it runs, then where it waits
    return f"{type(g).__name__} depth={len(frames)} {frames[-1]} ... {frames[0]}"


def _census(snapshot_path: str | None) -> dict:
    import collections
    import gc
    import tracemalloc

    import greenlet

    gc.collect()
    report = {"rss_kib": _rss_kib()}
    # The heap first: labelling greenlets below walks their frames, which creates frame objects that stay.
    if tracemalloc.is_tracing():
        snap = tracemalloc.take_snapshot()
        report["traced_kib"] = tracemalloc.get_traced_memory()[0] // 1024
        if snapshot_path:
            snap.dump(snapshot_path)
        del snap
    objects = gc.get_objects()
    types = collections.Counter(type(o).__qualname__ for o in objects)
    greenlets = collections.Counter(_greenlet_label(o) for o in objects if isinstance(o, greenlet.greenlet))
    report.update({"objects": len(objects), "types": dict(types.most_common(80)),
                   "greenlets": dict(greenlets.most_common(40)), "greenlet_count": sum(greenlets.values())})
    del objects
    return report


def _census_loop(trigger: str) -> None:
    from workspace.extensions import socketio

    path = Path(trigger)
    while True:
        socketio.sleep(0.5)
        if path.exists():
            label = path.read_text().strip() or "census"
            report = _census(f"{trigger}.{label}.snap")
            report["label"] = label
            report["sockets"] = len(socketio.server.eio.sockets)
            Path(f"{trigger}.{label}.json").write_text(json.dumps(report, indent=1))
            path.unlink()


def post_worker_init(worker):
    _product_post_worker_init(worker)
    frames = int(os.environ.get("CENSUS_TRACEMALLOC", "0"))
    if frames:
        import tracemalloc

        tracemalloc.start(frames)
    from workspace.extensions import socketio

    socketio.start_background_task(_census_loop, os.environ["CENSUS_TRIGGER"])
