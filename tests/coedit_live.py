"""A real Yjs editor for live co-editing tests: js/clients/yjs_agent.js (npm yjs + y-socket.io's SocketIOProvider)
in a node process, with waits on what it prints (never sleeps)."""

from __future__ import annotations

import subprocess
import threading

from realtime_live import TIMEOUT, Inbox, NodeClient

from processes import ROOT

AGENT = ROOT / "js" / "clients" / "yjs_agent.js"


class YjsAgent(NodeClient):
    """NodeClient's process handling (reader, close) around another script."""

    def __init__(self, url: str, project_id: int, path: str, token: str | None, name: str = "editor") -> None:
        self.name = name
        self.inbox = Inbox()
        self.proc = subprocess.Popen(["node", str(AGENT), url, f"{project_id}/{path}", token or "-"], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def send(self, op: str, **fields) -> None:
        self._send({"op": op, **fields})

    def wait_synced(self, timeout: float = TIMEOUT) -> str:
        item = self.inbox.wait(lambda i: i["type"] in ("synced", "connect_error"), timeout, f"{self.name} synced")
        assert item["type"] == "synced", item
        return item["text"]

    def type(self, text: str, at="end", delay_ms: int = 0) -> None:
        """Type `text` one character (one Yjs transaction, one sync-update) at a time, and wait until done."""
        start = len(self.inbox.snapshot())
        self.send("type", text=text, at=at, delay_ms=delay_ms)
        self.inbox.wait(lambda i: i["type"] == "done" and i.get("op") == "type" and self._after(i, start),
                        TIMEOUT + len(text) * delay_ms / 1000, f"{self.name} typed")

    def _after(self, item, start: int) -> bool:
        return any(i is item for i in self.inbox.snapshot()[start:])

    def wait_text(self, predicate, timeout: float = TIMEOUT) -> str:
        if isinstance(predicate, str):
            expected = predicate
            predicate = lambda text: text == expected  # noqa: E731 - a one-line adapter
        self.send("text")
        return self.inbox.wait(lambda i: i["type"] in ("text", "synced") and predicate(i["text"]), timeout,
                               f"{self.name} text")["text"]

    def text(self) -> str:
        start = len(self.inbox.snapshot())
        self.send("text")
        return self.inbox.wait(lambda i: i["type"] == "text" and self._after(i, start), TIMEOUT, "text")["text"]

    def wait_error(self, code: str, timeout: float = TIMEOUT) -> dict:
        return self.inbox.wait(lambda i: i["type"] == "yjs-error" and i["error"]["code"] == code, timeout,
                               f"{self.name} yjs-error {code}")["error"]

    def errors(self) -> list[dict]:
        return [i["error"] for i in self.inbox.snapshot() if i["type"] == "yjs-error"]
