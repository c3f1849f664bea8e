"""The wire codec: total over bytes, round-trips, and agrees with pycrdt's own encoding."""

import pycrdt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crdt import protocol
from crdt.lib0 import Reader, write_var_uint
from crdt.protocol import (
    AuthDenied,
    AwarenessEntry,
    AwarenessUpdate,
    ProtocolError,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    Unknown,
    decode,
)

MESSAGES = (SyncStep1, SyncStep2, SyncUpdate, AwarenessUpdate, AuthDenied, QueryAwareness, Unknown)


def assert_total(frame: bytes) -> None:
    try:
        message = decode(frame)
    except ProtocolError:
        return
    assert isinstance(message, MESSAGES)


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_decode_is_total_over_arbitrary_bytes(frame):
    assert_total(frame)


@given(st.binary(max_size=40), st.integers(0, 3), st.integers(0, 3))
def test_decode_is_total_over_bytes_behind_valid_headers(tail, kind, subtype):
    assert_total(bytes([kind, subtype]) + tail)
    assert_total(bytes([kind]) + tail)


def doc_update() -> tuple[bytes, bytes]:
    doc = pycrdt.Doc(client_id=2**40 + 7)
    doc.get("content", type=pycrdt.Text).insert(0, "héllo wörld")
    return doc.get_update(), doc.get_state()


def valid_frames() -> list[bytes]:
    update, state = doc_update()
    entries = [AwarenessEntry(12, 3, {"user": {"name": "Zoë ✍", "color": "#f00"}})]
    return [
        protocol.sync_step1(state),
        protocol.sync_step2(update),
        protocol.sync_update(update),
        protocol.awareness(protocol.awareness_payload(entries)),
        protocol.auth_denied("no entry"),
        protocol.query_awareness(),
    ]


@settings(max_examples=1500)
@given(st.data())
def test_decode_is_total_over_mutated_valid_frames(data):
    frame = bytearray(data.draw(st.sampled_from(valid_frames())))
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        position = data.draw(st.integers(0, max(len(frame) - 1, 0)))
        if action == "flip" and frame:
            frame[position] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del frame[position:]
        elif action == "insert":
            frame[position:position] = data.draw(st.binary(min_size=1, max_size=4))
        elif frame:
            del frame[position]
    assert_total(bytes(frame))


def test_valid_frames_round_trip():
    for frame in valid_frames():
        message = decode(frame)
        assert protocol.encode(message) == frame


def test_agrees_with_pycrdt_encoders():
    update, _ = doc_update()
    assert decode(pycrdt.create_sync_message(pycrdt.Doc())) == SyncStep1(pycrdt.Doc().get_state())
    assert decode(pycrdt.create_update_message(update)) == SyncUpdate(update)
    assert protocol.sync_update(update) == pycrdt.create_update_message(update)
    awareness = pycrdt.Awareness(pycrdt.Doc(client_id=99))
    awareness.set_local_state({"user": {"name": "Ann"}})
    payload = awareness.encode_awareness_update([99])
    message = decode(pycrdt.create_awareness_message(payload))
    assert isinstance(message, AwarenessUpdate)
    assert message.entries == (
        AwarenessEntry(99, awareness.meta[99]["clock"], {"user": {"name": "Ann"}}),
    )


def test_awareness_strings_use_utf8_byte_lengths():
    entry = AwarenessEntry(1, 1, {"name": "😀"})
    payload = protocol.awareness_payload([entry])
    assert decode(protocol.awareness(payload)).entries == (entry,)


def test_awareness_null_state_means_removed():
    payload = protocol.awareness_payload([AwarenessEntry(5, 9, None)])
    assert decode(protocol.awareness(payload)).entries[0].state is None


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "empty frame"),
        (b"\x00", "truncated varUint"),
        (b"\x00\x05\x00", "unknown sync message type 5"),
        (b"\x00\x02\x05ab", "truncated payload"),
        (b"\x00\x00\x01\xff", "truncated"),
        (b"\x00\x02\x01a\x00", "trailing bytes"),
        (b"\x00" + b"\xff" * 9, "varUint too long"),
        (b"\x00\x00\x03\x05\x01\x02", "more entries"),
        (b"\x01\x03\x05\x01\x01", "more entries"),
        (b"\x01\x05\x01\x01\x01\x01{", "not JSON"),
        (b"\x01\x05\x01\x01\x01\x01\xff", "UTF-8"),
        (b"\x02\x01", "unknown auth"),
        (b"\x03\x00", "trailing bytes"),
    ],
)
def test_malformed_frames_are_rejected_with_a_reason(frame, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode(frame)


def test_deeply_nested_awareness_json_is_rejected_not_crashing():
    text = "[" * 100_000
    payload = protocol.write_var_uint(1) + b"\x01\x01" + protocol.write_var_string(text)
    with pytest.raises(ProtocolError):
        decode(protocol.awareness(payload))


def test_unknown_types_decode_as_unknown():
    assert decode(b"\x64anything") == Unknown(100)
    assert decode(protocol.write_var_uint(300)) == Unknown(300)


@given(st.integers(min_value=0, max_value=2**53 - 1), st.binary(max_size=3))
def test_var_uint_reads_what_lib0_writes_and_stops_after_it(value, tail):
    reader = Reader(write_var_uint(value) + tail, ProtocolError)
    assert reader.var_uint() == value
    assert reader.remaining == len(tail)


@given(st.binary(min_size=1, max_size=10))
def test_var_uint_is_total_and_bounded(data):
    # Anything past 2**53 or longer than 8 bytes is refused, as is data that ends mid-way.
    reader = Reader(data, ProtocolError)
    try:
        value = reader.var_uint()
    except ProtocolError as exc:
        end = next((i for i, byte in enumerate(data) if byte < 0x80), None)
        assert end is None or end >= 8 or "out of range" in str(exc)
        return
    assert 0 <= value <= 2**53 - 1
    # What lib0 writes, or a padded form of it (lib0 reads those too): its last byte is 0.
    assert write_var_uint(value) == data[: reader.pos] or data[reader.pos - 1] == 0
