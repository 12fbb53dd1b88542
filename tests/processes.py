"""Start and stop real processes (gunicorn web processes, rq workers, node clients) for live tests.

Every process gets the test's own database schema, Redis prefix, Socket.IO channel and RQ queue (see
`live_env` in conftest), binds to 127.0.0.1 only, and is stopped when the test ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of a test's own on a free port, which the test may kill and start again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.proc: subprocess.Popen | None = None
        self.start()

    def pings(self) -> bool:
        import redis

        try:
            return redis.Redis.from_url(self.url, socket_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.directory)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.pings():
            assert time.monotonic() < deadline, "dedicated redis did not come up"
            time.sleep(0.05)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


class Proc:
    """A child process with its output in a temporary log file (read it with `.output()`)."""

    def __init__(self, args: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self.args = args
        self.log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def send_signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        """Signal the process group and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        self.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            return self.popen.wait(5)

    def kill(self) -> None:
        """SIGKILL, no cleanup: what a crash looks like."""
        self.stop(signal.SIGKILL)


def wait_http(url: str, timeout: float = 30, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.output()[-4000:]}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not up after {timeout}s" + (f":\n{proc.output()[-4000:]}" if proc else ""))


def start_web(env: dict[str, str], port: int | None = None, async_mode: str = "eventlet",
              args: list[str] | None = None) -> tuple[Proc, str]:
    """A gunicorn web process exactly as the Procfile runs it; returns it and its base URL once /healthz answers."""
    port = port or free_port()
    env = {**env, "PORT": str(port), "BIND_HOST": "127.0.0.1", "ASYNC_MODE": async_mode}
    proc = Proc(args or [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], env, f"web-{port}")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", proc=proc)
    return proc, base


def start(args: list[str], env: dict[str, str], name: str) -> Proc:
    """Any other process (an rq worker, a node client)."""
    return Proc(args, env, name)
