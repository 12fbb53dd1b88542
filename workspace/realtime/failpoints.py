"""Named pause points that let a test force one interleaving of two live processes, instead of hoping for it.

`reach("join.after_authorize")` does nothing unless the app runs with APP_ENV=testing and FAILPOINTS names that
point. Then it pushes to the Redis list `failpoint:<name>:reached` (the test waits on it) and blocks this green
thread until the test pushes to `failpoint:<name>:release` (at most FAILPOINT_WAIT_SECONDS). Production never pauses.
"""

from __future__ import annotations

import time

from flask import current_app

from ..extensions import redis_store

FAILPOINT_WAIT_SECONDS = 30


def key(name: str, which: str) -> str:
    return redis_store.key("failpoint", name, which)


def reach(name: str) -> None:
    config = current_app.config
    if name not in config.get("FAILPOINTS", ()) or config.get("APP_ENV") != "testing":
        return
    client = redis_store.client
    client.rpush(key(name, "reached"), "1")
    client.expire(key(name, "reached"), FAILPOINT_WAIT_SECONDS * 2)
    deadline = time.monotonic() + FAILPOINT_WAIT_SECONDS
    # Short blocking pops: the shared client's socket timeout (2 s) would cut a longer one.
    while time.monotonic() < deadline and not client.blpop([key(name, "release")], timeout=1):
        pass
