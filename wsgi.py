"""The web process's entry point: `gunicorn -c gunicorn.conf.py wsgi:app`.

Monkey-patching must come before anything imports socket, threading or psycopg2, so it is the first thing here.
ASYNC_MODE (eventlet by default, or gevent) must match gunicorn's worker class; gunicorn.conf.py reads the same
variable. psycopg2 is a C extension that would block the whole hub on every query without a green wait callback.
"""

import os

ASYNC_MODE = os.environ.setdefault("ASYNC_MODE", "eventlet")

if ASYNC_MODE == "eventlet":
    import eventlet

    eventlet.monkey_patch()
    from psycogreen.eventlet import patch_psycopg

    patch_psycopg()
    from workspace.realtime import eventlet_websocket

    eventlet_websocket.install()  # C-speed unmasking and a cap on fragmented messages (see the module)
    from workspace import redis_readiness

    redis_readiness.install(eventlet.patcher.original("select").poll)  # no hub switch per Redis command
elif ASYNC_MODE == "gevent":
    import gevent

    # gevent records, for every greenlet, the stack that spawned it and its parent's tree (for debugging tools we do
    # not use): 34 frame objects, about 5 KiB, kept for each idle socket's greenlets (bench/idle_census.py).
    gevent.config.track_greenlet_tree = False
    from gevent import monkey

    monkey.patch_all()
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
    from workspace import redis_readiness

    redis_readiness.install(monkey.get_original("select", "poll"))  # no hub switch per Redis command

import gc  # noqa: E402
import logging  # noqa: E402

from config import ConfigError  # noqa: E402
from workspace import create_app  # noqa: E402 - after monkey-patching, on purpose

try:
    app = create_app()
except ConfigError as exc:
    # One clear line naming the variable instead of a traceback; exit status 3 is gunicorn's "worker failed to boot",
    # which stops the master instead of respawning the worker forever.
    logging.getLogger("gunicorn.error").critical("configuration refused: %s", exc)
    raise SystemExit(3) from None

# The app's long-lived objects (modules, SQLAlchemy metadata, prebuilt statements, ...) leave the collector's
# generations: a full collection then scans only what the process allocated since, instead of stopping the hub for
# tens of milliseconds (86 ms measured in bench/coedit.py, every socket of the process waiting meanwhile).
gc.freeze()
