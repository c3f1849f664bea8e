"""What the cluster bus reads from a note's Redis stream: entries it wrote come back as they
were, and anything else (another program writing the key, a truncated entry) is BadEntry,
never another exception: one bad entry must not stop the reader for every other note."""

import contextlib

import pycrdt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crdt import protocol
from crdt.protocol import AwarenessEntry
from server.cluster.entries import AWARENESS, REPLY, SYNC, UPDATE, BadEntry, Entry, decode

LIMIT = 1 << 20


def _update() -> bytes:
    doc = pycrdt.Doc()
    doc["content"] = text = pycrdt.Text()
    text += "hello"
    return doc.get_update()


@pytest.mark.parametrize(
    "entry",
    [
        Entry("a-1", UPDATE, _update()),
        Entry("a-1", AWARENESS, protocol.awareness_payload([AwarenessEntry(7, 1, {"u": 1})]), 42),
        Entry("a-1", SYNC, pycrdt.Doc().get_state()),
        Entry("a-1", REPLY, b"\x01\x05\x03", to="b-2"),
    ],
)
def test_an_entry_comes_back_as_it_was_written(entry):
    assert decode(entry.fields(), LIMIT) == entry


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({}, "origin"),
        ({b"o": b"a", b"k": b"x", b"d": b""}, "kind"),
        ({b"o": b"a", b"k": b"u"}, "payload"),
        ({b"o": b"", b"k": b"u", b"d": b"x"}, "origin"),
        ({b"o": b"\xff\xfe", b"k": b"u", b"d": b"x"}, "origin"),
        ({b"o": b"a" * 65, b"k": b"u", b"d": b"x"}, "origin"),
        ({b"o": b"a", b"k": b"u", b"d": b"x" * (LIMIT + 1)}, "limit"),
        ({b"o": b"a", b"k": b"a", b"d": b"\x01"}, "connection"),
        ({b"o": b"a", b"k": b"a", b"c": b"1", b"d": b"\x05\x01"}, "malformed"),
        ({b"o": b"a", b"k": b"s", b"d": b"\x01\x01\xff\xff\xff\xff\x7f"}, "malformed"),
        ({b"o": b"a", b"k": b"r", b"d": b"\x00"}, "addressee"),
    ],
)
def test_what_is_not_an_entry_is_refused_with_a_reason(fields, why):
    with pytest.raises(BadEntry, match=why):
        decode(fields, LIMIT)


@given(st.dictionaries(st.sampled_from([b"o", b"k", b"d", b"c", b"t", b"x"]), st.binary()))
def test_decode_is_total_over_stream_fields(fields):
    with contextlib.suppress(BadEntry):
        decode(fields, LIMIT)
