"""The deployment descriptions as data: the Procfile's commands, and a fresh database schema for a release to create."""

from __future__ import annotations

import os
import signal
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from processes import BIN
from services import PG_URL, schema_url

ROOT = Path(__file__).resolve().parent.parent


def procfile() -> dict[str, str]:
    """`{"release": "...", "web": "...", "worker": "..."}` as written in the Procfile."""
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = command.strip()
    return commands


def procfile_env(live_env: dict[str, str], **extra: str) -> dict[str, str]:
    """What a Procfile platform gives the commands: the URLs and settings in the environment, the app's executables
    on PATH (a platform installs them globally; here they live in the virtualenv)."""
    return {**live_env, "PATH": f"{BIN}{os.pathsep}{live_env.get('PATH', '')}", "BIND_HOST": "127.0.0.1", **extra}


@contextmanager
def fresh_schema():
    """A DATABASE_URL on an empty schema of its own (the release command has everything to create), dropped after."""
    name = f"deploy_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    try:
        yield schema_url(PG_URL, name)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        engine.dispose()


def group_alive(proc) -> bool:
    """Whether any process of `proc`'s process group still runs (the `sh -c` wrapper may be gone before them)."""
    proc.popen.poll()  # reap the wrapper if it has exited: a zombie still counts as a group member
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


def signal_group(proc, sig: int = signal.SIGTERM) -> None:
    if group_alive(proc):
        os.killpg(proc.pid, sig)


def stop_group(proc, sig: int = signal.SIGTERM, timeout: float = 30) -> bool:
    """Signal the whole process group, as a platform does, and wait for it (see `wait_group`)."""
    signal_group(proc, sig)
    return wait_group(proc, timeout)


def wait_group(proc, timeout: float = 30) -> bool:
    """True when every member of the group exits within `timeout` (else they are SIGKILLed). A process that is not
    our child cannot be waited for: poll its group, briefly and boundedly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_alive(proc):
            proc.popen.wait(5)
            return True
        time.sleep(0.05)
    signal_group(proc, signal.SIGKILL)
    proc.popen.wait(5)
    return False
