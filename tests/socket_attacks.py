"""Shared by the socket attack replays in tests/security/ (a pytest plugin, see tests/conftest.py): live web
processes, raw Engine.IO sessions, and tokens of any lifetime.

Every process shares the test's database, Redis prefix and Socket.IO channel (`live_env`), and the signing keys of
the in-process app (`make_app`), so tokens minted here work against them.
"""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from flask_jwt_extended import create_access_token

from processes import start_web


def webs(live_env: dict[str, str], processes: list, count: int = 2, **env: str) -> list[tuple[object, str]]:
    """`count` gunicorn web processes exactly as the Procfile runs them, started side by side."""
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(start_web, {**live_env, "SHUTDOWN_DRAIN_SECONDS": "1", **env}) for _ in range(count)]
        started = [future.result() for future in futures]
    processes.extend(proc for proc, _ in started)
    return started


@pytest.fixture
def stop_webs_together(processes):
    """SIGTERM every web process at once, then wait (stopping them one by one waits out each drain in turn)."""
    yield
    for proc in processes:
        proc.send_signal(signal.SIGTERM)
    for proc in processes:
        proc.stop()


def access_token(app, user, seconds: float, family: str = "attack-family") -> str:
    """An access token of `user` that expires in `seconds` (the API only issues whole minutes)."""
    with app.app_context():
        return create_access_token(identity=str(user.id), additional_claims={"fam": family, "name": user.name},
                                   expires_delta=timedelta(seconds=seconds))


class RawPolling:
    """An Engine.IO v4 long-polling session spoken by hand, to send what no well-behaved client library would."""

    SEPARATOR = "\x1e"

    def __init__(self, base: str, headers: dict[str, str] | None = None) -> None:
        self.url = base + "/socket.io/"
        self.headers = headers or {}
        response = requests.get(self.url, params={"EIO": "4", "transport": "polling"}, headers=self.headers,
                                timeout=10)
        self.status = response.status_code
        self.sid = json.loads(response.text[1:])["sid"] if response.ok else None

    def post(self, *packets: str) -> int:
        """Send Engine.IO packets (e.g. "40{...}" = Socket.IO CONNECT); the HTTP status."""
        response = requests.post(self.url, params={"EIO": "4", "transport": "polling", "sid": self.sid},
                                 data=self.SEPARATOR.join(packets).encode(), headers=self.headers, timeout=10)
        return response.status_code

    def poll(self, timeout: float = 15) -> tuple[int, list[str]]:
        """One long-poll: the status and the packets the server had (or sent within its ping interval)."""
        response = requests.get(self.url, params={"EIO": "4", "transport": "polling", "sid": self.sid},
                                headers=self.headers, timeout=timeout)
        return response.status_code, response.text.split(self.SEPARATOR) if response.ok else []

    def wait_packet(self, predicate, timeout: float = 15) -> str | None:
        """Poll until a packet matches; None when the session ended first (400 or an Engine.IO CLOSE)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, packets = self.poll(timeout=max(1.0, deadline - time.monotonic()))
            if status != 200:
                return None
            for packet in packets:
                if predicate(packet):
                    return packet
                if packet == "1":
                    return None
        raise TimeoutError(f"no matching packet within {timeout}s")


def json_lines(output: str) -> list[dict]:
    """Every line a process wrote, each parsed as JSON (fails on the first that is not)."""
    parsed = []
    for line in output.splitlines():
        if line.strip():
            try:
                parsed.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"a log line is not JSON: {line[:300]!r}") from None
    return parsed
