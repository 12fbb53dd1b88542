"""Bytes from the network before and inside Yrs: what Yjs writes passes `crdt.check`; updates and state vectors
that crash, panic, poison or bloat Yrs (found by fuzzing pycrdt 0.14 / Yrs 0.28) are refused before it sees them;
a panic that still happens is an InvalidUpdate, not a BaseException escaping `except Exception`; and bounded fuzzes
of generated, bit-flipped and truncated updates, state vectors and awareness messages find nothing that gets past
the checks and then breaks a document."""

from __future__ import annotations

import contextlib
import random

import pytest
from pycrdt import Doc, Text, merge_updates

from workspace.documents import crdt, wire
from workspace.realtime import awareness

# Written by the npm `yjs` client (13.6): two clients' text with emoji, CJK, deletes, formats and an embed, a map
# with nested values, an array, a subdocument and XML (every content kind Yjs writes), as a whole state, a merge of
# four of its updates, and a diff against the other client's state vector.
FROM_YJS = [bytes.fromhex(h) for h in (
    "0201d20f00040107636f6e74656e7401620fe90700040107636f6e74656e74016884e9070002c3a981e907010384e907040d20f09f98"
    "8020e6bca2e5ad970a46e9070004626f6c640474727565c6e90704e9070504626f6c64046e756c6cc6e90700e9070104626f6c64046e"
    "756c6cc5e9070ee90701117b22696d616765223a22782e706e67227dc6e9070fe9070104626f6c6404747275652801016d016b017603"
    "066e657374656475067d017c402000007701737e787601046465657074020102036269677c53800000036e65677d4508010361727202"
    "7d01770374776f2901016d03737562016776000701017803017087e90715060400e9071602686901e907010203",
    "0201d20f00040107636f6e74656e74016203e90700040107636f6e74656e741368c3a96c6c6f20f09f988020e6bca2e5ad970a46e907"
    "0004626f6c640474727565c6e90704e9070504626f6c64046e756c6c01e907010203",
    "010fe90700040107636f6e74656e74016884e9070002c3a981e907010384e907040d20f09f988020e6bca2e5ad970a46e9070004626f"
    "6c640474727565c6e90704e9070504626f6c64046e756c6cc6e90700e9070104626f6c64046e756c6cc5e9070ee90701117b22696d61"
    "6765223a22782e706e67227dc6e9070fe9070104626f6c6404747275652801016d016b017603066e657374656475067d017c40200000"
    "7701737e787601046465657074020102036269677c53800000036e65677d45080103617272027d01770374776f2901016d0373756201"
    "6776000701017803017087e90715060400e9071602686901e907010203",
)]

CLIENT = 123456  # varuint c0c407: the client of `_typed_doc`, which some of the inputs below write as


def _vu(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _typed_doc() -> Doc:
    doc = Doc(client_id=CLIENT)
    text = doc.get(crdt.TEXT_NAME, type=Text)
    text += "ab😀cdé"
    text.insert(2, "XY")
    del text[0:1]
    return doc


# Each is refused by the check; what Yrs does with it otherwise is in the comment.
CRASHERS = {
    # A GC struct of length 0: applies, then every encode of the document panics (divide by zero): stored, it would
    # have broken every later sync-step-1 and compaction of the file.
    "poisons the document": "01020201000043ffffffffffffffffff01050000",
    "panics (clock near 2**64)": "0201020504010004f09f988002020000ffffffffffffffff7f00030103010001",
    "panics (a client twice)": "0201c0c407000a0301c0c4072244c0c40702010000",
    "panics (a clock past 32 bits)": "0101020100808080801001c0c407010005",
    # A Skip of length 0 before a string over the document's own clocks: applies, then reading the text asks the
    # allocator for gigabytes and the process aborts.
    "aborts the process": "0102c0c407000a0044c0c4070712" + "78" * 18 + "02c0c407010000c0c407010300",
    # 100,000 nested arrays in a map value (200 KB, within the update limit): Yrs overflows the C stack (SIGSEGV).
    "overflows the stack": (_vu(1) + _vu(1) + _vu(5) + _vu(0) + bytes([8]) + _vu(1) + _vu(7) + b"content" + _vu(1)
                            + bytes([117, 1]) * 100_000 + bytes([126]) + _vu(0)).hex(),
}


def test_what_yjs_and_pycrdt_write_passes_the_check():
    doc = _typed_doc()
    sent: list[bytes] = []
    doc.observe(lambda event: sent.append(event.update))
    text = doc.get(crdt.TEXT_NAME, type=Text)
    for i in range(30):  # pycrdt indexes UTF-8 bytes: the first four are ASCII, and stay so
        text.insert(i % 4, "xyz"[i % 3])
        if i % 5 == 4:
            del text[0:3]
            text += "漢😀"
    for update in [*FROM_YJS, *sent, doc.get_update(), merge_updates(*sent), crdt.EMPTY_UPDATE]:
        crdt.check(update)


@pytest.mark.parametrize("name", CRASHERS)
def test_updates_that_break_yrs_are_refused_before_it_sees_them(name):
    with pytest.raises(crdt.InvalidUpdate):
        crdt.check(bytes.fromhex(CRASHERS[name]))


@pytest.mark.parametrize("bad", [b"", b"\x01", b"\x00\x00\x00", b"\x01\x01\x02\x00\x04\x01\x07content\x00\x00",
                                 b"\x01\x01\x02\x00\x0b\x00\x00", b"\x01\x01\x02\x00\x04\x01\x07content\x01\xff\x00",
                                 b"\x01\x01\x02\x00\x08\x01\x07content\x01\x7f\x00\x00\x01\x02\x01\x00\x00"])
def test_malformed_updates_are_refused(bad):
    """Truncated; trailing bytes; an empty string; a content kind Yjs does not write (Yrs' move); bad UTF-8;
    a value of unknown type... and an empty delete range."""
    with pytest.raises(crdt.InvalidUpdate):
        crdt.check(bad)


def test_legacy_json_content_passes_and_overlong_numbers_do_not():
    """Yjs' legacy ContentJSON (kind 2: a count of JSON strings) is well-formed; a lib0 varint of 11 bytes is not."""
    item = b"\x01\x01\x02\x00\x02\x01\x07content"
    crdt.check(item + b"\x02\x011\x04null\x00")
    with pytest.raises(crdt.InvalidUpdate):
        crdt.check(b"\x01\x01\x02\x00\x08\x01\x07content\x01\x7d" + b"\xff" * 11 + b"\x01\x00")


def test_yrs_panics_are_invalid_updates_not_base_exceptions():
    """pyo3 raises a Rust panic as PanicException, a BaseException: mapped, so the store's and the socket lanes'
    `except Exception` see a refusal instead of losing the green thread."""
    doc = _typed_doc()
    with pytest.raises(crdt.InvalidUpdate):
        crdt.apply(doc, bytes.fromhex(CRASHERS["panics (clock near 2**64)"]))
    poisoned = _typed_doc()
    poisoned.apply_update(bytes.fromhex(CRASHERS["poisons the document"]))  # past the check: as stored before it
    with pytest.raises(crdt.InvalidUpdate):
        crdt.missing_from(poisoned, crdt.EMPTY_STATE)
    with pytest.raises(crdt.InvalidUpdate):
        crdt.merge(FROM_YJS[1], bytes.fromhex(CRASHERS["poisons the document"]))


def test_other_base_exceptions_go_through():
    with pytest.raises(KeyboardInterrupt), crdt._decoding():
        raise KeyboardInterrupt


# --- bounded fuzz ----------------------------------------------------------------------------------------------
def _number(rng: random.Random) -> int:
    return rng.choice([0, 1, 2, 3, 7, 100, 2**31 - 1, 2**32 - 1, 2**32, 2**53 - 1, 2**63, rng.randrange(40)])


def _struct(rng: random.Random) -> bytes:
    kind = rng.choice([0, 10, 1, 3, 4, 4, 4, 5, 6, 7, 8, 9, 11])
    if kind in (0, 10):
        return bytes([kind]) + _vu(rng.choice([0, 1, 3, _number(rng)]))
    info = kind | rng.choice([0, 0x80, 0x40, 0xC0, 0x20])
    out = bytes([info])
    for bit in (0x80, 0x40):
        if info & bit:
            out += _vu(rng.choice([CLIENT, 2, _number(rng)])) + _vu(rng.choice([0, 1, 5, 11, 12, _number(rng)]))
    if not info & 0xC0:
        out += _vu(1) + _vu(7) + b"content" if rng.random() < 0.8 else _vu(0) + _vu(CLIENT) + _vu(rng.randrange(12))
        if info & 0x20:
            out += _vu(1) + b"k"
    word = rng.choice(["", "a", "😀", "x" * rng.randrange(1, 20)]).encode()
    return out + {1: _vu(_number(rng)), 3: _vu(2) + b"\x01\x02", 4: _vu(len(word)) + word, 5: _vu(2) + b"{}",
                  6: _vu(1) + b"b" + _vu(4) + b"true", 7: _vu(rng.choice([0, 3, 9, 255])) + _vu(1) + b"p",
                  8: _vu(rng.choice([0, 1, 2])) + bytes([125, 5, 119, 1]) + b"s",
                  9: _vu(1) + b"g" + bytes([126]), 11: bytes(rng.randrange(256) for _ in range(5))}[kind]


def _generated(rng: random.Random) -> bytes:
    clients = rng.sample([CLIENT, 1, 2, 3], rng.choice([1, 1, 2]))
    out = _vu(len(clients))
    for client in clients:
        structs = [_struct(rng) for _ in range(rng.randrange(1, 4))]
        out += _vu(len(structs)) + _vu(client) + _vu(rng.choice([0, 1, 5, 12, _number(rng)])) + b"".join(structs)
    ranges = rng.choice([0, 0, 1])
    out += _vu(ranges)
    for _ in range(ranges):
        out += _vu(CLIENT) + _vu(1) + _vu(rng.choice([0, 1, 3, _number(rng)])) + _vu(rng.choice([0, 1, 2]))
    return out


def _mutated(rng: random.Random, update: bytes) -> bytes:
    data = bytearray(update)
    if rng.random() < 0.5:
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    return bytes(data[:rng.randrange(len(data))])


@pytest.mark.parametrize("seed", range(4))
def test_nothing_past_the_check_breaks_a_document(seed):
    """Generated updates (structure right, numbers and lengths wild) and bit-flipped or truncated real ones: each
    is refused by the check, or refused by Yrs as InvalidUpdate, or applied, leaving a document that still reads,
    encodes, answers a state vector and takes the next edit."""
    rng = random.Random(seed)
    base = _typed_doc()
    whole, state = base.get_update(), base.get_state()
    reals = [whole, *FROM_YJS]
    outcomes = {"refused": 0, "yrs refused": 0, "applied": 0}
    for i in range(600):
        update = _generated(rng) if i % 2 else _mutated(rng, rng.choice(reals))
        try:
            crdt.check(update)
        except crdt.InvalidUpdate:
            outcomes["refused"] += 1
            continue
        doc = Doc(client_id=99)
        text = doc.get(crdt.TEXT_NAME, type=Text)
        crdt.apply(doc, whole)
        try:
            crdt.apply(doc, update)
            crdt.merge(whole, update)
        except crdt.InvalidUpdate:
            outcomes["yrs refused"] += 1
            continue
        outcomes["applied"] += 1
        crdt.text_of(doc)
        crdt.missing_from(doc, crdt.EMPTY_STATE)
        crdt.missing_from(doc, state)
        text.insert(0, "q")
        assert crdt.text_of(doc).startswith("q")
    assert all(outcomes.values()), outcomes  # each way was taken: the fuzz reaches Yrs


@pytest.mark.parametrize("seed", range(2))
def test_any_state_vector_is_answered_or_refused(seed):
    """sync-step-1's state vector goes to Yrs as sent: random, bit-flipped and truncated ones, and ones with huge
    clients and clocks, get the missing update or InvalidUpdate, and the document is unharmed."""
    rng = random.Random(seed)
    doc = _typed_doc()
    whole, state = doc.get_update(), doc.get_state()
    for i in range(500):
        if i % 3 == 0:
            vector = bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
        elif i % 3 == 1:
            vector = _mutated(rng, state)
        else:
            entries = rng.randrange(3)
            vector = _vu(entries) + b"".join(_vu(rng.choice([CLIENT, _number(rng)])) + _vu(_number(rng))
                                             for _ in range(entries))
        with contextlib.suppress(crdt.InvalidUpdate):
            assert isinstance(crdt.missing_from(doc, vector), bytes)
    assert doc.get_update() == whole


@pytest.mark.parametrize("vector", ["8ff5e8bac2281c", "d7cc8bfc32425f08e816", "0101", "01c0c40780808080100000"])
def test_state_vectors_claiming_more_than_they_hold_are_refused_before_yrs(vector):
    """Yrs sizes its table by the claimed count first: these 7 and 10 bytes (2**40-odd entries) made it touch a
    gigabyte and stall the process for most of a second; a clock past 32 bits is refused too."""
    with pytest.raises(wire.MalformedUpdate):
        wire.check_state_vector(bytes.fromhex(vector))
    with pytest.raises(crdt.InvalidUpdate):
        crdt.missing_from(_typed_doc(), bytes.fromhex(vector))


@pytest.mark.parametrize("seed", range(2))
def test_any_awareness_message_is_decoded_or_refused(seed):
    """awareness-update bytes are read by pycrdt's (Python) lib0 decoder: random, bit-flipped and truncated messages
    give entries or InvalidAwareness, nothing else."""
    rng = random.Random(seed)
    real = awareness.encode([awareness.Entry(11, 3, '{"user":{"name":"Ann"},"cursor":{"anchor":1}}'),
                             awareness.Entry(2**40, 1, "null")])
    decoded = 0
    for i in range(500):
        message = bytes(rng.randrange(256) for _ in range(rng.randrange(16))) if i % 2 else _mutated(rng, real)
        try:
            entries = awareness.decode(message)
        except awareness.InvalidAwareness:
            continue
        decoded += 1
        assert all(isinstance(e.client_id, int) and isinstance(e.state, str) for e in entries)
    assert decoded
