"""y-protocols awareness messages (who is in a document, their caret and selection): decode, encode, remember.

Wire format (y-protocols/awareness `encodeAwarenessUpdate`): varuint count, then per entry varuint clientID,
varuint clock, varstring JSON state (`null` when the client left). pycrdt's lib0 Encoder/Decoder read and write
the varints; this module adds the bounds checks a server needs for bytes from the network.

The latest state of every client in a document is kept in Redis (a hash per document, each entry stamped), so an
editor connecting to any process is sent everyone's carets at once instead of after their next 15 s renewal.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from pycrdt import Decoder, Encoder

from ..extensions import redis_store

MAX_ENTRIES = 16
_MAX_VARUINT = 2**53  # Yjs client ids and clocks are JS numbers
# y-protocols drops a remote state not renewed for 30 s; entries older than that are not sent to newcomers.
OUTDATED_SECONDS = 30


class InvalidAwareness(ValueError):
    """Not a well-formed awareness update."""


@dataclass(frozen=True)
class Entry:
    client_id: int
    clock: int
    state: str  # the JSON text as sent; "null" for a client that left


def decode(message: bytes) -> list[Entry]:
    decoder = Decoder(message)
    try:
        count = _uint(decoder)
        if count > MAX_ENTRIES:
            raise InvalidAwareness(f"more than {MAX_ENTRIES} entries")
        entries = []
        for _ in range(count):
            client_id, clock = _uint(decoder), _uint(decoder)
            state = decoder.read_var_string()
            if decoder.length < 0:
                raise InvalidAwareness("truncated")
            json.loads(state or "null")
            entries.append(Entry(client_id, clock, state or "null"))
    except (IndexError, RuntimeError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidAwareness(str(exc)) from exc
    if decoder.length != 0:
        raise InvalidAwareness("trailing bytes")
    return entries


def _uint(decoder: Decoder) -> int:
    value = decoder.read_var_uint()
    if value >= _MAX_VARUINT:
        raise InvalidAwareness("number out of range")
    return value


def encode(entries: list[Entry]) -> bytes:
    encoder = Encoder()
    encoder.write_var_uint(len(entries))
    for entry in entries:
        encoder.write_var_uint(entry.client_id)
        encoder.write_var_uint(entry.clock)
        encoder.write_var_string(entry.state)
    return encoder.to_bytes()


def messages(entries: list[Entry]) -> list[bytes]:
    """`entries` as awareness messages of at most MAX_ENTRIES each: what `decode` accepts, so a client's echo of
    one (y-socket.io's provider sends back every state it applies, in one message per message received) is too."""
    return [encode(entries[start:start + MAX_ENTRIES]) for start in range(0, len(entries), MAX_ENTRIES)]


def removal(entries: list[Entry]) -> list[Entry]:
    """Entries announcing that these clients left (state null, clock + 1 so every peer applies it)."""
    return [Entry(e.client_id, e.clock + 1, "null") for e in entries]


def _key(namespace: str) -> str:
    return redis_store.key("coedit", "awareness", namespace)


def remember(namespace: str, entries: list[Entry]) -> None:
    """Keep the document's latest state per client (removed clients forgotten)."""
    client = redis_store.client
    now = time.time()
    pipe = client.pipeline()
    for entry in entries:
        if entry.state == "null":
            pipe.hdel(_key(namespace), entry.client_id)
        else:
            pipe.hset(_key(namespace), entry.client_id, json.dumps([entry.clock, entry.state, now]))
    pipe.expire(_key(namespace), 2 * OUTDATED_SECONDS)
    pipe.execute()


def remembered_clock(namespace: str, client_id: int) -> int | None:
    """The clock of the client's latest state remembered for the document (None: none is)."""
    value = redis_store.client.hget(_key(namespace), client_id)
    return None if value is None else json.loads(value)[0]


def current(namespace: str) -> list[Entry]:
    """Every client's state renewed within the last OUTDATED_SECONDS."""
    cutoff = time.time() - OUTDATED_SECONDS
    entries = []
    for client_id, value in redis_store.client.hgetall(_key(namespace)).items():
        clock, state, at = json.loads(value)
        if at >= cutoff:
            entries.append(Entry(int(client_id), clock, state))
    return entries[:MAX_ENTRIES * 8]
