"""The y-websocket wire codec, sans I/O: bytes -> Message and Message -> bytes.

One websocket frame carries exactly one message (y-websocket v3 clients read one per frame).
Layout, all integers lib0 varUints, byte arrays and strings prefixed by their byte length:

    0 sync        0 step1 <state vector>  |  1 step2 <update>  |  2 update <update>
    1 awareness   <awareness update: count, then (client id, clock, JSON state string)*>
    2 auth        0 permission denied <reason string>
    3 query awareness

decode() is total over bytes: anything malformed raises ProtocolError and nothing else.
Types this codec does not know decode to Unknown, which the server ignores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum

from .lib0 import Reader, write_var_bytes, write_var_string, write_var_uint


class ProtocolError(ValueError):
    """A frame that is not a valid y-websocket message."""


class MessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class SyncType(IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


AUTH_PERMISSION_DENIED = 0


@dataclass(frozen=True, slots=True)
class SyncStep1:
    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    client_id: int
    clock: int
    state: object  # decoded JSON; None means the client left


@dataclass(frozen=True, slots=True)
class AwarenessUpdate:
    entries: tuple[AwarenessEntry, ...]
    payload: bytes  # the raw awareness update, re-broadcast as received


@dataclass(frozen=True, slots=True)
class AuthDenied:
    reason: str


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    pass


@dataclass(frozen=True, slots=True)
class Unknown:
    type: int


Message = (
    SyncStep1 | SyncStep2 | SyncUpdate | AwarenessUpdate | AuthDenied | QueryAwareness | Unknown
)


# --- decoding --------------------------------------------------------------------------------


def decode(frame: bytes) -> Message:
    """Decode one frame. Raises ProtocolError for anything malformed."""
    if not frame:
        raise ProtocolError("empty frame")
    reader = Reader(frame, ProtocolError)
    kind = reader.var_uint()
    message: Message
    if kind == MessageType.SYNC:
        message = _decode_sync(reader)
    elif kind == MessageType.AWARENESS:
        payload = reader.var_bytes()
        message = AwarenessUpdate(decode_awareness(payload), payload)
    elif kind == MessageType.AUTH:
        if reader.var_uint() != AUTH_PERMISSION_DENIED:
            raise ProtocolError("unknown auth message")
        message = AuthDenied(reader.var_string())
    elif kind == MessageType.QUERY_AWARENESS:
        message = QueryAwareness()
    else:
        return Unknown(kind)  # ignored; whatever follows is not ours to judge
    reader.done()
    return message


def _decode_sync(reader: Reader) -> Message:
    subtype = reader.var_uint()
    payload = reader.var_bytes()
    if subtype == SyncType.STEP1:
        decode_state_vector(payload)
        return SyncStep1(payload)
    if subtype == SyncType.STEP2:
        return SyncStep2(payload)
    if subtype == SyncType.UPDATE:
        return SyncUpdate(payload)
    raise ProtocolError(f"unknown sync message type {subtype}")


def decode_state_vector(data: bytes) -> dict[int, int]:
    """client id -> clock. Raises ProtocolError if malformed."""
    reader = Reader(data, ProtocolError)
    vector = reader.state_vector()
    reader.done()
    return vector


def decode_awareness(payload: bytes) -> tuple[AwarenessEntry, ...]:
    reader = Reader(payload, ProtocolError)
    count = reader.var_uint()
    if count > reader.remaining // 3:  # client, clock and an (empty) string: three bytes at least
        raise ProtocolError("awareness update announces more entries than it holds")
    entries = []
    for _ in range(count):
        client_id = reader.var_uint()
        clock = reader.var_uint()
        text = reader.var_string()
        try:
            state = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise ProtocolError("awareness state is not JSON") from None
        entries.append(AwarenessEntry(client_id, clock, state))
    reader.done()
    return tuple(entries)


# --- encoding --------------------------------------------------------------------------------


def sync_step1(state_vector: bytes) -> bytes:
    return bytes((MessageType.SYNC, SyncType.STEP1)) + write_var_bytes(state_vector)


def sync_step2(update: bytes) -> bytes:
    return bytes((MessageType.SYNC, SyncType.STEP2)) + write_var_bytes(update)


def sync_update(update: bytes) -> bytes:
    return bytes((MessageType.SYNC, SyncType.UPDATE)) + write_var_bytes(update)


def awareness(payload: bytes) -> bytes:
    return bytes((MessageType.AWARENESS,)) + write_var_bytes(payload)


def awareness_payload(entries: list[AwarenessEntry] | tuple[AwarenessEntry, ...]) -> bytes:
    out = bytearray(write_var_uint(len(entries)))
    for entry in entries:
        out += write_var_uint(entry.client_id)
        out += write_var_uint(entry.clock)
        out += write_var_string(json.dumps(entry.state, separators=(",", ":")))
    return bytes(out)


def query_awareness() -> bytes:
    return bytes((MessageType.QUERY_AWARENESS,))


def auth_denied(reason: str) -> bytes:
    return bytes((MessageType.AUTH, AUTH_PERMISSION_DENIED)) + write_var_string(reason)


def encode(message: Message) -> bytes:
    """Encode any decoded message back to its frame (Unknown cannot be encoded)."""
    match message:
        case SyncStep1(state_vector):
            return sync_step1(state_vector)
        case SyncStep2(update):
            return sync_step2(update)
        case SyncUpdate(update):
            return sync_update(update)
        case AwarenessUpdate(_, payload):
            return awareness(payload)
        case AuthDenied(reason):
            return auth_denied(reason)
        case QueryAwareness():
            return query_awareness()
    raise ValueError(f"cannot encode {message!r}")
