"""A recording stand-in for python-socketio's server: just what the dispatcher's lanes call; background tasks run
when the test says so (`run_tasks`)."""

from __future__ import annotations

import logging
from types import SimpleNamespace


class LaneServer:
    def __init__(self, name: str, is_connected=lambda sid, ns: True) -> None:
        self.async_handlers = True
        self.logger = logging.getLogger(name)
        self.tasks: list = []
        self.slept: list = []
        self.manager = SimpleNamespace(sid_from_eio_sid=lambda eio, ns: f"{eio}{ns}", is_connected=is_connected)
        self.packet_class = lambda *a, **k: SimpleNamespace(args=a, **k)

    def start_background_task(self, fn, *args):
        self.tasks.append((fn, args))

    def sleep(self, seconds):
        self.slept.append(seconds)

    def run_tasks(self):
        while self.tasks:
            fn, args = self.tasks.pop(0)
            fn(*args)
