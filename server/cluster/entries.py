"""What instances write to a note's Redis stream, and the checks on what they read back.

An entry is a flat map of bytes, as Redis streams keep it:

- ``o``: the instance that wrote it (readers skip their own);
- ``k``: the kind: ``u`` an update (what a room's document changed), ``a`` awareness states
  of one of the origin's connections, ``s`` a state vector asking every instance with the note
  open for what it has that the origin lacks (and for its own state vector back), ``r`` such
  an answer, asking only the instance named in ``t`` for what it lacks;
- ``d``: the payload (the update, the awareness payload, the state vector);
- ``c``: for awareness, the origin's connection the states belong to (they go when it leaves);
- ``t``: for ``r``, the instance asked.

The stream can hold anything another program wrote to the key, so `decode` is total over the
fields and raises BadEntry for whatever is not an entry; updates are checked again by the room
(crdt.validation) before pycrdt reads them, like a client's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crdt import protocol
from crdt.protocol import AwarenessEntry, ProtocolError

UPDATE = "u"
AWARENESS = "a"
SYNC = "s"
REPLY = "r"
KINDS = frozenset((UPDATE, AWARENESS, SYNC, REPLY))

MAX_INSTANCE_BYTES = 64


class BadEntry(ValueError):
    """What was read from a stream is not an entry this version writes."""


@dataclass(frozen=True, slots=True)
class Entry:
    origin: str
    kind: str
    data: bytes
    connection: int = 0
    to: str = ""

    def fields(self) -> dict[bytes, bytes]:
        fields = {b"o": self.origin.encode(), b"k": self.kind.encode(), b"d": self.data}
        if self.kind == AWARENESS:
            fields[b"c"] = str(self.connection).encode()
        if self.kind == REPLY:
            fields[b"t"] = self.to.encode()
        return fields

    def awareness(self) -> tuple[AwarenessEntry, ...]:
        """The states of an awareness entry (already checked by decode)."""
        return protocol.decode_awareness(self.data)


def decode(fields: Mapping[bytes, bytes], max_bytes: int) -> Entry:
    """The entry these stream fields hold; BadEntry if they hold none."""
    origin = _instance(fields.get(b"o"), "origin")
    kind_bytes = fields.get(b"k")
    kind = kind_bytes.decode("ascii", "replace") if isinstance(kind_bytes, bytes) else ""
    if kind not in KINDS:
        raise BadEntry(f"unknown kind {kind_bytes!r:.40}")
    data = fields.get(b"d")
    if not isinstance(data, bytes):
        raise BadEntry("no payload")
    if len(data) > max_bytes:
        raise BadEntry(f"payload of {len(data)} bytes is past the limit of {max_bytes}")
    connection, to = 0, ""
    try:
        if kind == AWARENESS:
            connection = _connection(fields.get(b"c"))
            protocol.decode_awareness(data)
        elif kind in (SYNC, REPLY):
            protocol.decode_state_vector(data)
            if kind == REPLY:
                to = _instance(fields.get(b"t"), "addressee")
    except ProtocolError as exc:
        raise BadEntry(f"malformed {kind} payload: {exc}") from None
    return Entry(origin, kind, data, connection, to)


def _instance(value: object, what: str) -> str:
    if not isinstance(value, bytes) or not 0 < len(value) <= MAX_INSTANCE_BYTES:
        raise BadEntry(f"no valid {what}")
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        raise BadEntry(f"no valid {what}") from None
    if not text.isprintable():
        raise BadEntry(f"no valid {what}")
    return text


def _connection(value: object) -> int:
    if not isinstance(value, bytes) or not value.isdigit() or len(value) > 20:
        raise BadEntry("awareness without a valid connection")
    return int(value)
