"""A small hand encoder of Yjs v1 updates, for tests that need updates no library will write:
nested past the limits, clocks past 32 bits, counts that lie.

An update is a list of client sections (client, first clock, structs) plus a delete set. Each
struct is built by one of the functions below and is the encoded bytes of one struct.
"""

from __future__ import annotations

import struct as _struct
from collections.abc import Iterable, Sequence

from crdt.lib0 import write_var_bytes, write_var_string, write_var_uint

ID = tuple[int, int]


def update(
    sections: Sequence[tuple[int, int, Sequence[bytes]]],
    deletes: Iterable[tuple[int, Sequence[tuple[int, int]]]] = (),
) -> bytes:
    out = bytearray(write_var_uint(len(sections)))
    for client, clock, structs in sections:
        out += write_var_uint(len(structs)) + write_var_uint(client) + write_var_uint(clock)
        for encoded in structs:
            out += encoded
    deletes = list(deletes)
    out += write_var_uint(len(deletes))
    for client, ranges in deletes:
        out += write_var_uint(client) + write_var_uint(len(ranges))
        for clock, length in ranges:
            out += write_var_uint(clock) + write_var_uint(length)
    return bytes(out)


def item(
    ref: int,
    content: bytes,
    *,
    origin: ID | None = None,
    right: ID | None = None,
    root: str | None = None,
    parent: ID | None = None,
    key: str | None = None,
) -> bytes:
    """One item: the info byte, its origins or its parent (a root by name, or a type's id),
    then its already encoded content."""
    info = ref | (0x80 if origin else 0) | (0x40 if right else 0)
    out = bytearray()
    if origin:
        out += _id(origin)
    if right:
        out += _id(right)
    if not origin and not right:
        if key is not None:
            info |= 0x20
        if root is not None:
            out += write_var_uint(1) + write_var_string(root)
        else:
            assert parent is not None, "an item without origins names its parent"
            out += write_var_uint(0) + _id(parent)
        if key is not None:
            out += write_var_string(key)
    return bytes([info]) + bytes(out) + content


def _id(id_: ID) -> bytes:
    return write_var_uint(id_[0]) + write_var_uint(id_[1])


def gc(length: int) -> bytes:
    return bytes([0]) + write_var_uint(length)


def skip(length: int) -> bytes:
    return bytes([10]) + write_var_uint(length)


# --- contents (pass to item() with their ref) ------------------------------------------------

DELETED, JSON, BINARY, STRING, EMBED, FORMAT, TYPE, ANY, DOC = range(1, 10)
ARRAY, MAP, TEXT, XML_ELEMENT, XML_FRAGMENT, XML_HOOK, XML_TEXT = range(7)


def deleted(length: int) -> bytes:
    return write_var_uint(length)


def json_content(values: Sequence[str]) -> bytes:
    return write_var_uint(len(values)) + b"".join(write_var_string(v) for v in values)


def binary(data: bytes) -> bytes:
    return write_var_bytes(data)


def string(text: str) -> bytes:
    return write_var_string(text)


def embed(json_text: str) -> bytes:
    return write_var_string(json_text)


def format_(key: str, json_text: str) -> bytes:
    return write_var_string(key) + write_var_string(json_text)


def type_(type_ref: int, name: str | None = None) -> bytes:
    out = bytes([type_ref])
    if type_ref in (XML_ELEMENT, XML_HOOK):
        out += write_var_string(name or "p")
    return out


def any_content(values: Sequence[bytes]) -> bytes:
    """ContentAny of already encoded Any values (see any_value)."""
    return write_var_uint(len(values)) + b"".join(values)


def doc(guid: str, options: bytes | None = None) -> bytes:
    return write_var_string(guid) + (options if options is not None else any_value({}))


def any_value(value: object) -> bytes:
    """A lib0 Any: None, bools, ints (varint), floats, str, bytes, lists, dicts."""
    if value is None:
        return b"\x7e"
    if value is True:
        return b"\x78"
    if value is False:
        return b"\x79"
    if isinstance(value, int):
        sign = 0x40 if value < 0 else 0
        magnitude = abs(value)
        out = bytearray([(0x80 if magnitude > 0x3F else 0) | sign | (magnitude & 0x3F)])
        magnitude >>= 6
        while magnitude:
            out.append((0x80 if magnitude > 0x7F else 0) | (magnitude & 0x7F))
            magnitude >>= 7
        return b"\x7d" + bytes(out)
    if isinstance(value, float):
        return b"\x7b" + _struct.pack(">d", value)
    if isinstance(value, str):
        return b"\x77" + write_var_string(value)
    if isinstance(value, bytes):
        return b"\x74" + write_var_bytes(value)
    if isinstance(value, list):
        return b"\x75" + write_var_uint(len(value)) + b"".join(any_value(v) for v in value)
    if isinstance(value, dict):
        return (
            b"\x76"
            + write_var_uint(len(value))
            + b"".join(write_var_string(k) + any_value(v) for k, v in value.items())
        )
    raise TypeError(f"no Any encoding for {type(value).__name__}")


def nested_any(depth: int) -> bytes:
    """An Any array nested ``depth`` deep ([[[...]]]), built without recursion."""
    return b"\x75\x01" * (depth - 1) + b"\x75\x00" if depth else b"\x7e"
