"""Structural check of a Yjs v1 update from the network, before Yrs decodes it.

Yrs (0.28, under pycrdt) trusts the structure of what it decodes: a struct of length 0, a clock near 2**64 or an
`Any` value nested a hundred thousand deep in an otherwise well-formed update makes it panic (a PanicException,
which is not an Exception), poison the document so that every later encode panics, ask the allocator for
gigabytes (the process aborts) or overflow the C stack (the process dies). None of these is produced by Yjs, so an
update is walked here first, following Yjs' own decoder (`yjs/src/utils/encoding.js`, `UpdateDecoderV1`,
lib0's `readAny`), and refused unless every struct and delete range is non-empty, every clock fits Yrs' 32 bits
and every client id a JS number, each client is written once, every content kind is one Yjs writes, nesting is
shallow and no byte is left over. It decides only well-formedness; Yrs still decodes and integrates the update.
"""

from __future__ import annotations

MAX_NUMBER = 2**53  # Yjs client ids are JS numbers
MAX_CLOCK = 2**32  # Yrs keeps clocks and lengths in 32 bits (and wraps past them)
MAX_DEPTH = 64  # nested arrays/objects in an `Any` value (Yrs recurses on the C stack)
# Content kinds (the low 5 bits of a struct's info byte) Yjs writes: GC 0, Skip 10, and Item contents 1-9.
_GC, _SKIP = 0, 10
_ITEM_CONTENTS = frozenset(range(1, 10))
_XML_NAMED_TYPES = frozenset({3, 5})  # YXmlElement, YXmlHook: a ContentType followed by a name


class MalformedUpdate(ValueError):
    """The bytes are not a well-formed Yjs v1 update."""


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise MalformedUpdate("truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def uint(self) -> int:
        """lib0 varuint, at most MAX_NUMBER."""
        value, shift = 0, 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if value >= MAX_NUMBER:
                raise MalformedUpdate("number out of range")
            if b < 0x80:
                return value
            shift += 7

    def length(self) -> int:
        """A struct or range length: at least 1."""
        value = self.uint()
        if value == 0:
            raise MalformedUpdate("empty struct")
        return value

    def count(self) -> int:
        """How many things follow: each takes at least a byte, so more than the bytes left is a lie."""
        value = self.uint()
        if value > len(self.data) - self.pos:
            raise MalformedUpdate("count beyond the update's end")
        return value

    def skip(self, n: int) -> None:
        if n > len(self.data) - self.pos:
            raise MalformedUpdate("truncated")
        self.pos += n

    def string(self) -> bytes:
        """A varstring's (or varUint8Array's) bytes."""
        n = self.uint()
        self.skip(n)
        return self.data[self.pos - n:self.pos]

    def signed(self) -> None:
        """lib0 varint (sign in the first byte)."""
        b, shift = self.byte(), 6
        while b & 0x80:
            b = self.byte()
            shift += 7
            if shift > 70:
                raise MalformedUpdate("number out of range")

    def any(self, depth: int = 0) -> None:
        """lib0 `readAny`: one typed value."""
        if depth > MAX_DEPTH:
            raise MalformedUpdate("value nested too deep")
        tag = self.byte()
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            return
        if tag == 125:
            return self.signed()
        if tag == 124:
            return self.skip(4)
        if tag in (123, 122):  # float64, bigint64
            return self.skip(8)
        if tag in (119, 116):  # string, Uint8Array
            self.string()
            return None
        if tag == 118:  # object
            for _ in range(self.count()):
                self.string()
                self.any(depth + 1)
            return None
        if tag == 117:  # array
            for _ in range(self.count()):
                self.any(depth + 1)
            return None
        raise MalformedUpdate(f"unknown value type {tag}")


def check(update: bytes) -> None:
    """MalformedUpdate unless `update` is a well-formed Yjs v1 update (see the module doc)."""
    reader = _Reader(update)
    clients: set[int] = set()
    for _ in range(reader.count()):  # structs, per client (Yjs writes each client once)
        structs = reader.count()
        _client(reader, clients)
        clock = reader.uint()
        for _ in range(structs):
            clock = _clock(clock + _struct(reader))
    clients.clear()
    for _ in range(reader.count()):  # delete set: per client, its deleted ranges
        _client(reader, clients)
        for _ in range(reader.count()):
            _clock(reader.uint() + reader.length())
    if reader.pos != len(update):
        raise MalformedUpdate("trailing bytes")


def check_state_vector(state_vector: bytes) -> None:
    """MalformedUpdate unless `state_vector` is a Yjs state vector (count, then client and clock per entry) whose
    count its bytes can hold: Yrs sizes its table by the count first, and a 7-byte vector claiming 2**40 entries had
    a web process touch a gigabyte and stall for most of a second before refusing it. Bytes after the entries are
    ignored, as Yrs does."""
    reader = _Reader(state_vector)
    entries = reader.uint()
    if entries > (len(state_vector) - reader.pos) // 2:
        raise MalformedUpdate("count beyond the state vector's end")
    for _ in range(entries):
        reader.uint()
        _clock(reader.uint())


def _client(reader: _Reader, seen: set[int]) -> None:
    client = reader.uint()
    if client in seen:
        raise MalformedUpdate("a client written twice")
    seen.add(client)


def _id(reader: _Reader) -> None:
    reader.uint()
    _clock(reader.uint())


def _clock(end: int) -> int:
    if end >= MAX_CLOCK:
        raise MalformedUpdate("clock out of range")
    return end


def _struct(reader: _Reader) -> int:
    """Skip one struct; returns its length (how many clock ticks it takes)."""
    info = reader.byte()
    kind = info & 0x1F
    if kind in (_GC, _SKIP):
        return reader.length()
    if kind not in _ITEM_CONTENTS:
        raise MalformedUpdate(f"unknown content kind {kind}")
    if info & 0x80:  # origin (left neighbour's id)
        _id(reader)
    if info & 0x40:  # right origin
        _id(reader)
    if not info & 0xC0:  # no origin: the parent is written out
        if reader.uint() == 1:
            reader.string()  # a root type's name
        else:
            _id(reader)  # a nested type's
        if info & 0x20:
            reader.string()  # key within a map
    return _content(reader, kind)


def _content(reader: _Reader, kind: int) -> int:
    if kind == 1:  # deleted
        return reader.length()
    if kind == 2:  # JSON (legacy): count, then strings
        n = reader.count()
        if n == 0:
            raise MalformedUpdate("empty struct")
        for _ in range(n):
            reader.string()
        return n
    if kind == 3:  # binary
        reader.string()
    elif kind == 4:  # string: its length is in UTF-16 units
        try:
            text = reader.string().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedUpdate("string is not UTF-8") from exc
        if not text:
            raise MalformedUpdate("empty struct")
        return len(text.encode("utf-16-le")) // 2
    elif kind == 5:  # embed (JSON text)
        reader.string()
    elif kind == 6:  # format: key, JSON value
        reader.string()
        reader.string()
    elif kind == 7:  # a nested type
        if reader.uint() in _XML_NAMED_TYPES:
            reader.string()
    elif kind == 8:  # values
        n = reader.count()
        if n == 0:
            raise MalformedUpdate("empty struct")
        for _ in range(n):
            reader.any()
        return n
    elif kind == 9:  # subdocument: guid, options
        reader.string()
        reader.any()
    return 1

