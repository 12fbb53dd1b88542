"""Socket.IO clients for the live realtime tests: the npm socket.io-client (driven through js/clients/agent.js) and
python-socketio's client, behind one small interface whose waits are all on events with timeouts; and the fixtures of
the live and security tiers (`clients`, `team`), loaded for every tier by tests/conftest.py."""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import threading
import time
from typing import Any

import pytest
import socketio
from teams import make_team

from processes import ROOT

AGENT = ROOT / "js" / "clients" / "agent.js"
TIMEOUT = 15.0


class Inbox:
    """Everything a client received, with waits that block on arrival (a condition variable), never on sleeps."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.cond = threading.Condition()

    def put(self, item: dict[str, Any]) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def wait(self, predicate, timeout: float = TIMEOUT, what: str = "", start: int = 0) -> dict[str, Any]:
        """The first item from index `start` on that satisfies `predicate`, waiting for it up to `timeout`."""
        deadline = time.monotonic() + timeout
        seen = start
        with self.cond:
            while True:
                for item in self.items[seen:]:
                    if predicate(item):
                        return item
                seen = len(self.items)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout}s waiting for {what}; got {self.items[-8:]}")
                self.cond.wait(left)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.cond:
            return list(self.items)


class Client:
    """Common waits over an Inbox of {type, event?, args?, ...} items."""

    inbox: Inbox
    name: str

    def wait_connected(self, timeout: float = TIMEOUT) -> dict:
        return self.inbox.wait(lambda i: i["type"] in ("connect", "connect_error"), timeout, f"{self.name} connect")

    def wait_event(self, event: str, predicate=lambda payload: True, timeout: float = TIMEOUT) -> dict:
        item = self.inbox.wait(lambda i: i["type"] == "event" and i["event"] == event and predicate(i["args"][0]),
                               timeout, f"{self.name} {event}")
        return item["args"][0]

    def received(self, event: str) -> list[dict]:
        return [i["args"][0] for i in self.inbox.snapshot() if i["type"] == "event" and i["event"] == event]


class NodeClient(Client):
    """The real JavaScript client in a node process."""

    _ids = itertools.count(1)

    def __init__(self, url: str, token: str | None, name: str = "node", transport: str = "websocket") -> None:
        self.name = name
        self.inbox = Inbox()
        self.proc = subprocess.Popen(["node", str(AGENT), url, token or "-", transport], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.inbox.put(json.loads(line))
            except ValueError:
                self.inbox.put({"type": "log", "line": line})

    def _send(self, cmd: dict) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def emit(self, event: str, payload: Any, timeout: float = TIMEOUT) -> dict:
        cmd_id = next(self._ids)
        self._send({"op": "emit", "id": cmd_id, "event": event, "payload": payload, "timeout": int(timeout * 1000)})
        item = self.inbox.wait(lambda i: i["type"] == "ack" and i["id"] == cmd_id, timeout + 2, f"ack of {event}")
        assert item["error"] is None, f"{event} got no ack: {item['error']}"
        return item["ack"]

    def flood(self, event: str, payloads: list[Any], times: int) -> None:
        self._send({"op": "flood", "event": event, "payloads": payloads, "times": times})
        self.inbox.wait(lambda i: i["type"] == "flooded", TIMEOUT, "flood written")

    def burst(self, event: str, payloads: list[Any], times: int, timeout: float = 30) -> list[dict]:
        """Write `times` events at once, each asking for an ack; returns the acks in send order."""
        cmd_id = next(self._ids)
        self._send({"op": "burst", "id": cmd_id, "event": event, "payloads": payloads, "times": times,
                    "timeout": int(timeout * 1000)})
        acks = [self.inbox.wait(lambda i, n=n: i["type"] == "ack" and i["id"] == f"{cmd_id}:{n}", timeout + 5,
                                f"ack {n} of the {event} burst") for n in range(times)]
        assert all(a["error"] is None for a in acks), [a for a in acks if a["error"]][:3]
        return [a["ack"] for a in acks]

    def drop(self) -> None:
        """Disconnect until `reconnect` (the socket.io client does not reconnect after a client-side disconnect)."""
        self._send({"op": "drop"})
        self.inbox.wait(lambda i: i["type"] == "disconnect", TIMEOUT, f"{self.name} dropped")

    def reconnect(self) -> None:
        mark = len(self.inbox.snapshot())
        self._send({"op": "reconnect"})
        self.inbox.wait(lambda i: i["type"] == "connect", TIMEOUT, f"{self.name} reconnected", start=mark)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send({"op": "close"})
                self.proc.wait(3)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(3)


class PyClient(Client):
    """python-socketio's client (websocket transport)."""

    def __init__(self, url: str, token: str | None, name: str = "python") -> None:
        self.name = name
        self.inbox = Inbox()
        self.sio = socketio.Client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)
        self.sio.on("connect", lambda: self.inbox.put({"type": "connect"}))
        self.sio.on("connect_error", lambda data: self.inbox.put({"type": "connect_error", "data": data}))
        self.sio.on("disconnect", lambda reason=None: self.inbox.put({"type": "disconnect", "reason": reason}))
        self.sio.on("*", lambda event, *args: self.inbox.put({"type": "event", "event": event, "args": list(args)}))
        self.sio.connect(url, auth={"token": token} if token else {}, transports=["websocket"], wait_timeout=10)

    def emit(self, event: str, payload: Any, timeout: float = TIMEOUT) -> dict:
        return self.sio.call(event, payload, timeout=timeout)

    def close(self) -> None:
        self.sio.disconnect()


@pytest.fixture
def clients():
    """Socket.IO clients a test opened (node or python); all closed when it ends."""
    opened = []
    yield opened
    close_all(opened)


@pytest.fixture
def team(client, make_user):
    """An owner, a collaborator and a viewer on one project (tests/teams.py)."""
    return make_team(client, make_user)


def close_all(clients: list[Client]) -> None:
    for client in clients:
        with contextlib.suppress(Exception):  # best-effort teardown of a test's clients
            client.close()


def wait_until(check, timeout: float = TIMEOUT, interval: float = 0.1, what: str = "condition"):
    """Poll a REST condition (there is no event to await for an HTTP-visible state), bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached in {timeout}s (last: {last!r})")
