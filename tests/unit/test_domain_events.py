"""Domain events reach the subscribers of the app that sent them, once each, in the order they were connected."""

from __future__ import annotations

from flask import Flask

from workspace import events


def test_an_event_reaches_only_the_sending_apps_subscribers_once():
    first, second = Flask("first"), Flask("second")
    heard = []

    def receiver(app, **kwargs):
        heard.append((app.name, kwargs))

    try:
        for app in (first, second, first):  # connecting again (a second init_app) is a no-op
            events.file_deleted.connect(receiver, sender=app)
        with first.app_context():
            events.announce(events.file_deleted, project_id=1, path="a", version=2, user={"id": 3}, skip_sid=None)
        assert heard == [("first", {"project_id": 1, "path": "a", "version": 2, "user": {"id": 3}, "skip_sid": None})]
    finally:
        events.file_deleted.disconnect(receiver)


def test_receivers_run_in_the_order_they_were_connected():
    app = Flask(__name__)
    heard: list[int] = []
    # Enough receivers that blinker's set order matching the connection order by chance is out of the question.
    receivers = [lambda sender, n=n, **_: heard.append(n) for n in range(40)]
    try:
        for receiver in receivers:
            events.project_updated.connect(receiver, sender=app)
        with app.app_context():
            events.announce(events.project_updated, project_id=1, member_ids=[])
        assert heard == list(range(40))
    finally:
        for receiver in receivers:
            events.project_updated.disconnect(receiver)
