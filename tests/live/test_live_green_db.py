"""psycopg2 must not block the web process's hub (PITFALLS: psycopg2 under eventlet).

A request stuck on a PostgreSQL lock must leave the process free to answer others. Without the green wait callback
in wsgi.py, /healthz would hang behind it until the lock is released: checked by hand for gevent by removing
psycogreen's patch (this test then fails). eventlet's own monkey_patch() also greens psycopg2; the explicit psycogreen
call keeps both modes on one mechanism.
"""

import threading
import time

import pytest
import requests
import sqlalchemy as sa
from pg_locks import holding, wait_for_lock_waiters

from processes import start_web


@pytest.mark.live
@pytest.mark.parametrize("async_mode", ["eventlet", "gevent"])
def test_a_query_waiting_on_a_lock_does_not_block_other_requests(async_mode, live_env, processes, make_user,
                                                                 database_url):
    user = make_user()
    proc, base = start_web(live_env, async_mode=async_mode)
    processes.append(proc)
    engine = sa.create_engine(database_url)
    blocked = {}
    with holding(engine, ["LOCK TABLE users IN ACCESS EXCLUSIVE MODE"]) as blocker:

        def call_me():
            blocked["response"] = requests.get(base + "/api/v1/auth/me", headers=user.headers, timeout=30)

        waiter = threading.Thread(target=call_me)
        waiter.start()
        wait_for_lock_waiters(engine, blocker, 1)  # /auth/me's query now waits on the lock, inside the web process
        started = time.monotonic()
        health = requests.get(base + "/healthz", timeout=10)
        elapsed = time.monotonic() - started
        assert health.status_code == 200
        assert elapsed < 2, f"/healthz took {elapsed:.1f}s while a query waited on a lock: the hub is blocked"
        assert "response" not in blocked, "the locked request should still be waiting"
    waiter.join(10)
    assert blocked["response"].status_code == 200
    engine.dispose()
