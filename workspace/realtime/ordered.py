"""Room events in seq order, with their replay history: one Lua script, one Redis round trip per event.

`emit` runs one script that takes the project's next `seq`, appends the event to the project's history (a capped
Redis stream, read back by `join {since_seq}` through `replay`), records it in the recent-activity list of the
status endpoint, counts it for /metrics and publishes it on the Socket.IO channel. Redis runs scripts one at a
time, so the channel carries each project's events in seq order. The envelope's `host_id` is no process's own, so
every process, the sender's included, delivers the event from the channel, in channel order; no lock is held
across round trips.

The envelope is python-socketio's pub/sub message format (`PubSubManager.emit`). `OrderedRedisManager.envelope`
builds it because the script must put the seq in; `tests/realtime/test_ordered_emit.py` compares it with what the
library publishes and fails if the library's format changes.
Best-effort writes queued while the event is announced (redis_store.batch: metrics) ride in the same round trip.
Without a queue on our Redis (embedded mode, the tests' in-process server) the same script runs without the
publish and the local emit happens under a process lock, so this process still sends each project's events in
seq order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from flask import current_app
from redis.exceptions import NoScriptError, RedisError
from socketio import RedisManager

from ..errors import error_body
from ..extensions import redis_store
from ..models.types import utcnow
from ..observability import metrics
from . import activity

SEQ_PLACEHOLDER = "__workspace_seq__"
_DATA_PLACEHOLDER = "__workspace_data__"
# No manager has this host id, so every process (the sender's included) handles the message from the channel.
ORDERED_HOST_ID = "workspace-ordered-emit"
# Cursor moves take a seq but are neither kept for replay nor listed as activity (too frequent to be news).
UNKEPT = frozenset({"CURSOR_UPDATE"})
# Fallback ordering when no queue carries the events: taking the seq and emitting happen under this lock.
# threading.Lock is green under eventlet/gevent patching.
_LOCAL_ORDER = threading.Lock()

# KEYS: 1 seq counter, 2 history stream, 3 seq of the last kept event, 4 recent-activity list, 5 last activity time,
#       6 emitted-events counter hash.
# ARGV: 1 message JSON (its first key the quoted seq placeholder), 2 that quoted placeholder, 3 envelope head,
#       4 envelope tail, 5 channel ('' = no publish), 6 event, 7 '1' = keep it (history, activity), 8 history
#       length, 9 history TTL in ms, 10 activity summary JSON (seq placeholder first), 11 activity length, 12 time,
#       13 counter field.
# Each history entry names the seq of the kept event before it (`prev`), so `replay` can tell "only cursor moves
# in between" (they take seqs but are not kept) from "trimmed or expired".
_SCRIPT = """
local seq = redis.call('INCR', KEYS[1])
local s = tostring(seq)
local msg = string.gsub(ARGV[1], ARGV[2], s, 1)
if ARGV[7] == '1' then
  local prev = redis.call('GET', KEYS[3]) or '0'
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], s .. '-0', 'event', ARGV[6], 'data', msg, 'prev', prev)
  redis.call('PEXPIRE', KEYS[2], ARGV[9])
  redis.call('SET', KEYS[3], s)
  redis.call('LPUSH', KEYS[4], (string.gsub(ARGV[10], ARGV[2], s, 1)))
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[11]) - 1)
  redis.call('SET', KEYS[5], ARGV[12])
end
redis.call('HINCRBY', KEYS[6], ARGV[13], 1)
if ARGV[5] ~= '' then
  redis.call('PUBLISH', ARGV[5], ARGV[3] .. msg .. ARGV[4])
end
return seq
"""


_scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
log = logging.getLogger(__name__)
# Room events whose script may wait in a `deferred` block (what a socket lane batches; nothing else may take a seq
# meanwhile on the same green thread, or it would be numbered ahead of events queued before it).
DEFERRABLE = frozenset({"CURSOR_UPDATE"})
UNAVAILABLE = {"ok": False, **error_body("service_unavailable", "Realtime store unavailable; try again shortly.")}
_deferred: ContextVar[Deferred | None] = ContextVar("ordered_deferred", default=None)


class PendingSeq:
    """Stands for the seq of an event whose script waits in a `Deferred` pipeline: `value` once it ran, or `error`."""

    __slots__ = ("error", "value")

    def __init__(self) -> None:
        self.value: int | None = None
        self.error: Exception | None = None


class Deferred:
    """Scripts of room events queued in order, run in one pipelined round trip by `run` (see `deferred`)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, list[str], list[Any], list, PendingSeq]] = []

    def add(self, client: Any, keys: list[str], args: list[Any], riders: list) -> PendingSeq:
        pending = PendingSeq()
        self.calls.append((client, keys, args, riders, pending))
        return pending

    def run(self) -> None:
        """One pipeline (not a transaction: Redis still runs the scripts one at a time, in this order, so their
        seqs and publishes keep it); a failed script fails its own event only."""
        calls, self.calls = self.calls, []
        if not calls:
            return
        firsts: list[int] = []
        try:
            script = _script(calls[0][0])
            pipe = calls[0][0].pipeline(transaction=False)
            for _, keys, args, riders, _ in calls:
                firsts.append(len(pipe))
                pipe.evalsha(script.sha, len(keys), *keys, *args)
                for write in riders:  # best-effort writes of that event; their errors are ignored
                    write(pipe)
            results = pipe.execute(raise_on_error=False)
        except Exception as exc:  # the round trip itself failed (Redis down): every event of it
            if not isinstance(exc, RedisError):
                log.exception("deferred room events not sent")
            firsts, results = list(range(len(calls))), [exc] * len(calls)
        for first, (_, keys, args, _, pending) in zip(firsts, calls, strict=True):
            seq = results[first]
            if isinstance(seq, NoScriptError):  # Redis lost the script: load it, run what failed, still in order
                try:
                    seq = script(keys=keys, args=args)
                except Exception as exc:
                    seq = exc
            if isinstance(seq, Exception):
                log.warning("room event not sent, Redis unavailable: %s", seq)
                pending.error = seq
            else:
                pending.value = int(seq)

    @staticmethod
    def settle(answer: Any) -> Any:
        """A handler's answer with its stand-in seq filled in, or `service_unavailable` when its script failed."""
        if isinstance(answer, dict) and isinstance(pending := answer.get("seq"), PendingSeq):
            return dict(UNAVAILABLE) if pending.error is not None else {**answer, "seq": pending.value}
        return answer


@contextlib.contextmanager
def deferred() -> Iterator[Deferred]:
    """Within the block (this green thread only), a DEFERRABLE room event published through the queue manager
    does not run its script: `emit` queues it and returns the message with a `PendingSeq` as its seq. The caller
    runs them all with `Deferred.run()` (in the order they were emitted, one round trip) before answering anyone,
    and fills the answers in with `Deferred.settle`. What a socket lane does with its waiting cursor moves."""
    batch = Deferred()
    token = _deferred.set(batch)
    try:
        yield batch
    finally:
        _deferred.reset(token)


class OrderedRedisManager(RedisManager):
    """python-socketio's Redis manager; `envelope` is its pub/sub message for an event whose data is not yet known.

    It also tells what the library only logs, for co-editing (realtime.coedit), whose relays travel on this queue
    alone: `lost_publishes` counts messages it gave up publishing (Redis down), and every function in
    `on_resubscribed` is called (in the listener's green thread: keep it short) once the listener subscribed again
    after losing its subscription (Redis restarted or unreachable), when whatever was published meanwhile is lost.
    `before_publish` (the web process's frame flusher, realtime.frames) runs first: an emit's local receivers get
    their frames before the message is encoded and published, not after."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lost_publishes = 0
        self.subscriptions = 0
        self.on_resubscribed: list = []
        self.before_publish: Any = None

    def _publish(self, data: Any) -> Any:
        if self.before_publish is not None:
            self.before_publish()
        published = super()._publish(data)  # the receiver count, or None once it gave up
        if published is None:
            self.lost_publishes += 1
        return published

    def _redis_connect(self) -> None:
        super()._redis_connect()
        # The library's pubsub drops subscribe confirmations; ours keeps them, so `_listen` sees each (re)subscription.
        self.pubsub = self.redis.pubsub()

    def _listen(self):
        """The library's `_listen`, plus the subscribe confirmations counted and announced."""
        channel = self.channel.encode("utf-8")
        for message in self._redis_listen_with_retries():
            if message["type"] == "subscribe":
                self.subscriptions += 1
                for callback in self.on_resubscribed if self.subscriptions > 1 else ():
                    callback()
            elif message["channel"] == channel and message["type"] == "message" and "data" in message:
                yield message["data"]

    def envelope(self, event: str, room: str, skip_sid: str | None, namespace: str = "/") -> tuple[str, str]:
        """The message `PubSubManager.emit` would publish for one room event, split where its data goes."""
        message = {"method": "emit", "event": event, "data": [_DATA_PLACEHOLDER], "binary": False,
                   "namespace": namespace, "room": room, "skip_sid": skip_sid, "callback": None,
                   "host_id": ORDERED_HOST_ID}
        head, tail = self.json.dumps(message).split(json.dumps(_DATA_PLACEHOLDER), 1)
        return head, tail


def seq_key(project_id: int) -> str:
    return redis_store.key("project", project_id, "seq")


def _history_key(project_id: int) -> str:
    return redis_store.key("rt", "history", project_id)


def _last_kept_key(project_id: int) -> str:
    return redis_store.key("rt", "history", project_id, "last")


def emit(project_id: int, event: str, payload: dict[str, Any], room: str, skip_sid: str | None,
         manager: Any, local_emit) -> dict[str, Any]:
    """Emit a room event with the project's next seq; returns the message as sent.

    `manager` is the Socket.IO client manager to publish through when it is an `OrderedRedisManager` on our Redis;
    otherwise `local_emit(message)` sends it from this process, under the ordering lock.
    """
    config = current_app.config
    message = {"seq": SEQ_PLACEHOLDER, **payload, "project_id": project_id}
    message_json = json.dumps(message, separators=(",", ":"))
    at = payload.get("at") or utcnow().isoformat()
    keep = event not in UNKEPT
    counter_key, counter_field = metrics.emitted_counter(event)
    keys = [seq_key(project_id), _history_key(project_id), _last_kept_key(project_id),
            *activity.keys(project_id), counter_key]
    options = {"message_json": message_json, "event": event, "keep": keep,
               "summary_json": json.dumps(activity.summary(event, message, at)) if keep else "",
               "history_len": config["REALTIME_HISTORY_EVENTS"],
               "history_ms": config["REALTIME_HISTORY_SECONDS"] * 1000,
               "activity_len": activity.KEEP, "at": at, "counter_field": counter_field}
    if isinstance(manager, OrderedRedisManager) and manager.redis_url == config.get("REDIS_URL"):
        head, tail = manager.envelope(event, room, skip_sid)
        batch = _deferred.get() if event in DEFERRABLE else None
        if batch is not None:
            client = redis_store.client
            return {**message, "seq": batch.add(client, keys, _args(channel=manager.channel, head=head, tail=tail,
                                                                    **options), redis_store.take_later())}
        seq = _run(keys, channel=manager.channel, head=head, tail=tail, **options)
        return {**message, "seq": seq}
    with _LOCAL_ORDER:
        sent = {**message, "seq": _run(keys, **options)}
        local_emit(sent)
    return sent


def _script(client: Any) -> Any:
    script = _scripts.get(client)
    if script is None:  # EVALSHA, loading the script when Redis lacks it; hashed once per client
        script = _scripts[client] = client.register_script(_SCRIPT)
    return script


def _args(*, message_json: str, event: str, keep: bool, summary_json: str, history_len: int, history_ms: int,
          activity_len: int, at: str, counter_field: str, channel: str = "", head: str = "",
          tail: str = "") -> list[Any]:
    return [message_json, json.dumps(SEQ_PLACEHOLDER), head, tail, channel, event, "1" if keep else "0",
            history_len, history_ms, summary_json, activity_len, at, counter_field]


def _run(keys: list[str], **options: Any) -> int:
    client = redis_store.client
    script = _script(client)
    args = _args(**options)
    riders = redis_store.take_later()
    if not riders:
        return int(script(keys=keys, args=args))
    # Best-effort writes of the event being announced (metrics) go in the same round trip; their errors are ignored.
    pipe = client.pipeline(transaction=False)
    pipe.evalsha(script.sha, len(keys), *keys, *args)
    for write in riders:
        write(pipe)
    seq = pipe.execute(raise_on_error=False)[0]
    if isinstance(seq, NoScriptError):  # Redis lost the script (restart, SCRIPT FLUSH): load it and run it
        return int(script(keys=keys, args=args))
    if isinstance(seq, Exception):
        raise seq
    return int(seq)


def current_seq(project_id: int) -> int:
    return int(redis_store.client.get(seq_key(project_id)) or 0)


def replay(project_id: int, since_seq: int) -> dict[str, Any]:
    """What a client that saw every event up to `since_seq` missed: `{seq, missed: [{event, data}]}` in seq order
    (cursor moves excepted), or `{seq, resync: True}` when some of it is no longer kept (trimmed, expired, or a
    `since_seq` from before Redis lost the counter)."""
    pipe = redis_store.client.pipeline(transaction=True)  # one consistent snapshot of counter and history
    pipe.get(seq_key(project_id))
    pipe.get(_last_kept_key(project_id))
    pipe.xrange(_history_key(project_id), min=f"{since_seq + 1}-0", max="+")
    seq, last_kept, entries = pipe.execute()
    seq, last_kept = int(seq or 0), int(last_kept or 0)
    if since_seq > seq:
        return {"seq": seq, "resync": True}
    # Complete when the first kept event after since_seq follows since_seq directly (only cursor moves between).
    first_gap_from = int(entries[0][1]["prev"]) if entries else last_kept
    if first_gap_from > since_seq:
        return {"seq": seq, "resync": True}
    # The stored JSON is exactly what was sent; json.loads gives the client the same object back.
    return {"seq": seq, "missed": [{"event": fields["event"], "data": json.loads(fields["data"])}
                                   for _, fields in entries]}
