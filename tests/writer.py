"""pycrdt editors of a note body, for storage tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pycrdt


class Writer:
    """A pycrdt doc typing into the note body; each edit yields the update it made."""

    def __init__(self, client_id: int = 7) -> None:
        self.doc = pycrdt.Doc(client_id=client_id)
        self.text = self.doc.get("content", type=pycrdt.Text)
        self.captured: list[bytes] = []
        self.doc.observe(lambda event: self.captured.append(event.update))

    def type(self, chunk: str) -> bytes:
        self.text += chunk
        return self.captured.pop()

    def delete(self, start: int, end: int) -> bytes:
        del self.text[start:end]
        return self.captured.pop()

    @property
    def body(self) -> str:
        return str(self.text)


class Peer:
    """An editor of one note: its own doc, the updates it made, and what it has seen."""

    def __init__(self, client_id: int) -> None:
        self.doc = pycrdt.Doc(client_id=client_id)
        self.text = self.doc.get("content", type=pycrdt.Text)
        self.meta = self.doc.get("meta", type=pycrdt.Map)
        self.made: list[bytes] = []
        self._local = False
        self.doc.observe(self._on_update)

    def _on_update(self, event: pycrdt.TransactionEvent) -> None:
        if self._local:
            self.made.append(event.update)

    @contextmanager
    def edit(self) -> Iterator[None]:
        self._local = True
        try:
            with self.doc.transaction():
                yield
        finally:
            self._local = False

    def byte_offset(self, index: int) -> int:
        # pycrdt positions are UTF-8 byte offsets; the tests think in code points.
        return len(str(self.text)[:index].encode())

    def type(self, at: int, chunk: str) -> None:
        with self.edit():
            self.text.insert(self.byte_offset(at), chunk)

    def delete(self, start: int, end: int) -> None:
        with self.edit():
            body = str(self.text)
            del self.text[len(body[:start].encode()) : len(body[:end].encode())]

    def set(self, key: str, value: Any) -> None:
        with self.edit():
            self.meta[key] = value

    def receive(self, other: Peer) -> None:
        self.doc.apply_update(other.doc.get_update(self.doc.get_state()))

    def take(self) -> list[bytes]:
        made, self.made = self.made, []
        return made
