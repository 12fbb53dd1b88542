"""One socket's events are handled in order, with a bounded backlog, so one socket cannot hurt the others.

python-socketio handles each event in a task of its own (`async_handlers`): a client that emits thousands of
events without waiting spawns thousands of tasks, each holding a Redis connection, until the pool is empty for
everyone (PITFALLS: one green thread per socket event). Here each socket of the default namespace gets a lane: the
socket's reader appends the event, and one task per busy socket handles its lane in arrival order, then ends (an
idle socket has no lane and no task). Past SOCKET_BACKLOG waiting events, a CURSOR_UPDATE replaces the project's
last cursor waiting in the lane (that one is acked `{ok: true, coalesced: true}`: only the latest position
matters) and any other event is answered at once with a `rate_limited` ack and not handled.

python-socketio has no public hook for scheduling a socket's events, so `install` replaces the server's
`_handle_event` (the method that would start the per-event task); tests/live/test_live_fanout.py fails if that
method changes (events would no longer be handled in order). Co-editing namespaces (`/yjs|...`) get lanes too,
so an editor's updates are stored in the order it typed them; past the backlog its transport is closed instead
(a dropped update would leave the document diverged; the client reconnects and both sync-step-1 exchanges carry
everything over). An editor's `sync-update`s that wait in its lane are merged into one Yjs update (Yrs' exact merge,
up to the update size limit), and a waiting `awareness-update` gives way to a newer one of the same clients: a fast
typist's keystrokes then reach the store as one write per transaction, and its caret as its latest position,
instead of queueing one each behind it. Cursor moves waiting one after the other in a lane are handled together, their
scripts run in one pipelined round trip and their acks sent in order afterwards (`_handle_batch`). Other namespaces
keep the library's own dispatch. When the server runs handlers synchronously (`async_handlers=False`, what
Flask-SocketIO's test client sets), events run inline.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from socketio import packet

from ..documents.crdt import InvalidUpdate, merge
from ..errors import error_body
from . import awareness, ordered

NAMESPACE = "/"
DOCUMENTS = "/yjs|"  # co-editing namespaces (realtime.coedit)
COALESCED = frozenset({"CURSOR_UPDATE"})
BATCHED = ordered.DEFERRABLE  # waiting one after the other in a lane: their scripts go in one round trip
MERGED = "sync-update"  # a document socket's waiting Yjs updates: merged into one
SUPERSEDED = "awareness-update"  # a document socket's waiting caret/presence state: only the newest counts
RATE_LIMITED = {"ok": False, **error_body("rate_limited", "Too many events waiting on this socket; slow down.")}
_COALESCED_ACK = {"ok": True, "coalesced": True}


class Dispatcher:
    """Per-socket lanes for one python-socketio server (see the module doc)."""

    def __init__(self, server, backlog: int, merge_limit: int = 0) -> None:
        self.server = server
        self.backlog = max(1, backlog)
        self.merge_limit = merge_limit
        self.lanes: dict[str, deque] = {}
        # Guards "lane empty, drop it" against "append to the lane" (real threads in threading mode; green
        # under eventlet/gevent patching, where the sections never switch anyway).
        self._lock = threading.Lock()
        self._library_dispatch = server._handle_event
        # Set by a namespace's owner: True for a document event that needs no handler at all (realtime.coedit drops
        # awareness echoes here, before they cost a task and an app context each).
        self.needless: Callable[[str, list], bool] | None = None

    def install(self) -> Dispatcher:
        self.server._handle_event = self.handle_event
        return self

    def handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: list) -> None:
        """Called by the socket's reader for each event packet: queue it in the socket's lane."""
        namespace = namespace or NAMESPACE
        if not (namespace == NAMESPACE or namespace.startswith(DOCUMENTS)) or not self.server.async_handlers:
            return self._library_dispatch(eio_sid, namespace, id, data)
        if namespace != NAMESPACE and id is None and self.needless is not None and self.needless(namespace, data):
            return None
        sid = self.server.manager.sid_from_eio_sid(eio_sid, namespace)
        if not self.server.manager.is_connected(sid, namespace):
            return None
        with self._lock:
            lane = self.lanes.get(eio_sid)
            if lane is None:
                self.lanes[eio_sid] = lane = deque(((sid, namespace, id, data),))
                start = True
            else:
                start, replaced, answer = False, None, _COALESCED_ACK
                if self._merged(lane, sid, namespace, id, data):
                    pass
                elif len(lane) < self.backlog:
                    lane.append((sid, namespace, id, data))
                elif namespace != NAMESPACE:
                    start = None
                elif (replaced := self._coalesce(lane, sid, id, data)) is None:
                    replaced, answer = id, RATE_LIMITED
        if start is None:
            self.server.logger.warning("document socket %s overran its backlog; closing its transport", sid)
            self.server.eio.disconnect(eio_sid)
        elif start:
            self.server.start_background_task(self._drain, eio_sid, lane)
            if namespace != NAMESPACE:
                # A document's lane task starts now, so a keystroke's database round trip overlaps what the reader
                # parses next (its handler started 0.27 ms p50 after its arrival, behind its own caret move's
                # parsing). Not on the default namespace: its cursor moves are handled in batches of what waits.
                self.server.sleep(0)
        elif replaced is not None:
            self._ack(eio_sid, namespace, replaced, answer)
        return None

    def _merged(self, lane: deque, sid: str, namespace: str, id: int | None, data: list) -> bool:
        """Fold a document socket's event into the one waiting last in its lane (same socket, no ack asked): two
        `sync-update`s merge when Yrs can merge them within the size limit; a newer `awareness-update` replaces."""
        if not lane or namespace == NAMESPACE or id is not None or len(data) != 2 \
                or data[0] not in (MERGED, SUPERSEDED):
            return False  # an empty lane: its last event is being handled now
        last_sid, last_namespace, last_id, last_data = lane[-1]
        if (last_sid, last_namespace, last_id) != (sid, namespace, None) or len(last_data) != 2 \
                or last_data[0] != data[0]:
            return False
        first, second = last_data[1], data[1]
        if data[0] == SUPERSEDED:
            return self._superseded(lane, sid, namespace, first, second)
        if not (isinstance(first, bytes) and isinstance(second, bytes)) \
                or len(first) + len(second) > self.merge_limit:
            return False
        try:
            lane[-1] = (sid, namespace, None, [MERGED, merge(first, second)])
        except InvalidUpdate:
            return False  # handled on its own: the handler refuses it with invalid_update
        return True

    @staticmethod
    def _superseded(lane: deque, sid: str, namespace: str, older: Any, newer: Any) -> bool:
        """Replace a waiting awareness message with a newer one of the same socket when the newer one speaks for
        every client the older one did (awareness states are whole: the newest of a client replaces the rest)."""
        try:
            old_clients = {entry.client_id for entry in awareness.decode(older)}
            new_clients = {entry.client_id for entry in awareness.decode(newer)}
        except (awareness.InvalidAwareness, TypeError):
            return False  # handled on its own: the handler refuses it
        if not old_clients <= new_clients:
            return False
        lane[-1] = (sid, namespace, None, [SUPERSEDED, newer])
        return True

    @staticmethod
    def _coalesce(lane: deque, sid: str, id: int | None, data: list) -> int | None:
        """Put a cursor move in place of the last waiting one for the same project (so no older position of it is
        handled after it: the room ends with the latest); returns the replaced event's ack id (None when nothing was
        replaced)."""
        if data[0] not in COALESCED:
            return None
        project = _project_of(data)
        for i in range(len(lane) - 1, -1, -1):
            _, old_namespace, old_id, old_data = lane[i]
            if old_data[0] == data[0] and _project_of(old_data) == project:
                lane[i] = (sid, old_namespace, id, data)
                return old_id if old_id is not None else -1
        return None

    def _drain(self, eio_sid: str, lane: deque) -> None:
        """Handle a socket's waiting events in order; the lane goes away once empty. Cursor moves waiting one after
        the other are handled together (`_handle_batch`)."""
        server = self.server
        while True:
            with self._lock:
                if not lane:
                    self.lanes.pop(eio_sid, None)
                    return
                batch = [lane.popleft()]
                if batch[0][1] == NAMESPACE and batch[0][3][0] in BATCHED:
                    while lane and lane[0][1] == NAMESPACE and lane[0][3][0] in BATCHED:
                        batch.append(lane.popleft())
            if len(batch) > 1:
                self._handle_batch(eio_sid, batch)
                continue
            sid, namespace, id, data = batch[0]
            try:
                server._handle_event_internal(server, sid, eio_sid, data, namespace, id)
            except Exception:  # a handler that raises must not strand the socket's later events
                server.logger.exception("socket event %r failed", data[0] if data else None)

    def _handle_batch(self, eio_sid: str, batch: list[tuple]) -> None:
        """Run each event's handler chain as python-socketio would (`_handle_event_internal`), but with their room
        events' scripts queued (`ordered.deferred`) and run in one pipelined round trip once all were handled; then
        send the acks, in order, each with its seq (or `service_unavailable` for an event whose script failed).

        Why: one script round trip per cursor made the queue's listener deliver one event at a time, waking every
        receiver's writer per packet; published together, they reach the receivers as a burst (docs/benchmarks.md,
        Realtime)."""
        server = self.server
        answers = []
        with ordered.deferred() as scripts:
            for sid, namespace, _, data in batch:
                try:
                    answers.append(server._trigger_event(data[0], namespace, sid, *data[1:]))
                except Exception:  # as in `_drain`: logged, no ack (python-socketio sends none either)
                    server.logger.exception("socket event %r failed", data[0])
                    answers.append(server.not_handled)
        scripts.run()
        for (_, namespace, id, _), answer in zip(batch, answers, strict=True):
            if answer is server.not_handled or id is None:
                continue
            answer = scripts.settle(answer)
            data = [] if answer is None else list(answer) if isinstance(answer, tuple) else [answer]
            server._send_packet(eio_sid, server.packet_class(packet.ACK, namespace=namespace, id=id, data=data))

    def _ack(self, eio_sid: str, namespace: str, id: int, answer: dict[str, Any]) -> None:
        if id < 0:  # the client asked for no ack
            return
        self.server._send_packet(eio_sid, self.server.packet_class(packet.ACK, namespace=namespace, id=id,
                                                                   data=[answer]))


def _project_of(data: list) -> Any:
    payload = data[1] if len(data) > 1 else None
    return payload.get("project_id") if isinstance(payload, dict) else None


def install(server, backlog: int, merge_limit: int = 0) -> Dispatcher:
    """Route the default and document namespaces' events of `server` through per-socket lanes; waiting Yjs updates
    of one editor merge up to `merge_limit` bytes."""
    return Dispatcher(server, backlog, merge_limit).install()
