"""A client-side Yjs document typing at the end of its text (pycrdt stands in for the JS client: the wire format is
the same), for tests that drive the document store directly."""

from __future__ import annotations

from workspace.documents import crdt


class Typist:
    def __init__(self) -> None:
        self.doc = crdt.new_doc()
        self.sent: list[bytes] = []
        self.doc.observe(lambda event: self.sent.append(event.update))

    def type(self, chars: str) -> bytes:
        """Append `chars`; the update it made."""
        text = self.doc.get(crdt.TEXT_NAME, type=crdt.Text)
        text.insert(len(text), chars)
        return self.sent[-1]
