"""The Yjs side of a document, on pycrdt (the Rust Yrs CRDT): decode and apply updates, read the text, and turn a
whole-text replacement (REST PUT, FILE_CHANGE, DELETE) into the smallest delete/insert update, so editors' concurrent
keystrokes elsewhere in the file survive it.

The file's text is the `Y.Text` named `content`. pycrdt indexes text by UTF-8 byte offset (Yrs' default), while
Python slices by code point, so diffs are computed on `str` and their offsets converted before touching the Y.Text.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from pycrdt import Doc, Text, TransactionEvent, merge_updates

from . import wire

log = logging.getLogger(__name__)

TEXT_NAME = "content"
# A Yjs v1 update with no structs and an empty delete set: what an editor that has nothing new sends.
EMPTY_UPDATE = b"\x00\x00"
EMPTY_STATE = b"\x00"  # a state vector that has seen nothing
# Above this many characters in the changed middle, the diff works on lines, not characters (difflib is quadratic).
_CHAR_DIFF_LIMIT = 20_000


class InvalidUpdate(ValueError):
    """The bytes are not a Yjs update (or state vector) Yrs can decode."""


class Checked(bytes):
    """Update bytes known to be well-formed: passed `check`, or made by Yrs from such bytes (`merge`)."""


def check(update: bytes) -> Checked:
    """`update` as Checked, InvalidUpdate unless it is a well-formed Yjs update (`wire`): call it on every update from
    the network before Yrs sees it. Bytes already Checked are not walked again (a socket lane merges its waiting
    updates one at a time into one growing update, which the store then receives)."""
    if isinstance(update, Checked):
        return update
    with _decoding():
        wire.check(update)
    return Checked(update)


@contextmanager
def _decoding() -> Iterator[None]:
    """Refusals as InvalidUpdate: `wire`'s and Yrs' errors, and Yrs' panics, which pyo3 raises as `PanicException`, a
    BaseException that `except Exception` (the store's, the socket lanes') would let through."""
    try:
        yield
    except (ValueError, RuntimeError) as exc:
        raise InvalidUpdate(str(exc)) from exc
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise  # GreenletExit, KeyboardInterrupt, ...
        log.warning("Yrs panicked on a document's bytes: %s", exc)
        raise InvalidUpdate(f"Yrs could not handle it: {exc}") from exc


def new_doc() -> Doc:
    doc = Doc()
    doc.get(TEXT_NAME, type=Text)
    return doc


def text_of(doc: Doc) -> str:
    return str(doc.get(TEXT_NAME, type=Text))


def merge(first: bytes, second: bytes) -> bytes:
    """One update with the effect of applying `first` then `second` (Yrs' merge); InvalidUpdate if either is not
    an update. Both come from the network (a socket's waiting updates) or from an earlier merge."""
    return Checked(merge_all([check(first), check(second)]))


def merge_all(updates: list[bytes]) -> bytes:
    """One update with the effect of all of `updates` (any order: Yjs updates commute); they were `check`ed."""
    with _decoding():
        return merge_updates(*updates)


def apply(doc: Doc, update: bytes) -> None:
    """Apply a Yjs update; InvalidUpdate when Yrs cannot decode it (the doc may then hold part of it: discard it).
    Bytes from the network go through `check` first."""
    with _decoding():
        doc.apply_update(update)


def missing_from(doc: Doc, state_vector: bytes) -> bytes:
    """The update a peer with `state_vector` lacks (the answer to y-socket.io's `sync-step-1`; EMPTY_STATE: the
    whole document). The state vector comes from the network: checked first (`wire.check_state_vector`)."""
    with _decoding():
        wire.check_state_vector(state_vector)
        return doc.get_update(state_vector)


def replace_text(doc: Doc, new_text: str) -> bytes:
    """Edit the doc's text into `new_text` with minimal deletes/inserts in one transaction; the update it made
    (EMPTY_UPDATE when the text was already equal)."""
    old = text_of(doc)
    if old == new_text:
        return EMPTY_UPDATE
    text = doc.get(TEXT_NAME, type=Text)
    captured: list[bytes] = []

    def keep(event: TransactionEvent) -> None:
        captured.append(event.update)

    subscription = doc.observe(keep)
    try:
        with doc.transaction():
            # Right to left, so each edit's offsets are still those of the old text.
            for start, end, replacement in reversed(edits(old, new_text)):
                byte_start = len(old[:start].encode("utf-8"))
                byte_len = len(old[start:end].encode("utf-8"))
                if byte_len:
                    del text[byte_start:byte_start + byte_len]
                if replacement:
                    text.insert(byte_start, replacement)
    finally:
        doc.unobserve(subscription)
    return captured[0] if captured else EMPTY_UPDATE


def edits(old: str, new: str) -> list[tuple[int, int, str]]:
    """Non-overlapping `(start, end, replacement)` edits of `old` (code-point offsets, ascending) that give `new`."""
    prefix = 0
    limit = min(len(old), len(new))
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    a, b = old[prefix:len(old) - suffix], new[prefix:len(new) - suffix]
    if not a or not b:
        return [(prefix, prefix + len(a), b)]
    if max(len(a), len(b)) <= _CHAR_DIFF_LIMIT:
        return [(prefix + i1, prefix + i2, b[j1:j2]) for tag, i1, i2, j1, j2 in
                difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if tag != "equal"]
    return _line_edits(a, b, prefix)


def _line_edits(a: str, b: str, offset: int) -> list[tuple[int, int, str]]:
    lines_a, lines_b = a.splitlines(keepends=True), b.splitlines(keepends=True)
    starts = [0]
    for line in lines_a:
        starts.append(starts[-1] + len(line))
    return [(offset + starts[i1], offset + starts[i2], "".join(lines_b[j1:j2])) for tag, i1, i2, j1, j2 in
            difflib.SequenceMatcher(None, lines_a, lines_b).get_opcodes() if tag != "equal"]
