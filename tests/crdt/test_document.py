"""crdt.document: plain unit tests, no event loop, no database."""

from __future__ import annotations

import pycrdt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from crdt import document
from crdt.document import InvalidStateVector, InvalidUpdate


def edits(client_id: int, *chunks: str) -> tuple[Doc, list[bytes]]:
    """A doc typing ``chunks`` into its body, one transaction each, and the updates it made."""
    doc = Doc(client_id=client_id)
    text = doc.get("content", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for chunk in chunks:
        text += chunk
    return doc, updates


def rich_doc() -> Doc:
    doc = Doc(client_id=11)
    doc["content"] = Text("héllo 😀")
    doc["meta"] = Map(
        {
            "count": 3,
            "ratio": 1.5,
            "flag": True,
            "none": None,
            "blob": b"\x00\x01",
            "tags": ["a", 2],
            "inner": Text("inner text"),
            "nested": Map({"k": "v"}),
            "xml": XmlFragment([XmlElement("b", {}, ["bold"])]),
        }
    )
    doc["items"] = Array([1, "two", Map({"k": 1}), Array([True])])
    doc["xml"] = XmlFragment([XmlElement("p", {"class": "c"}, [XmlText("hi")]), XmlText("tail")])
    return doc


RICH_RENDERED = {
    "content": "héllo 😀",
    "items": [1, "two", {"k": 1}, [True]],
    "meta": {
        "count": 3,
        "ratio": 1.5,
        "flag": True,
        "none": None,
        "blob": "AAE=",
        "tags": ["a", 2],
        "inner": "inner text",
        "nested": {"k": "v"},
        "xml": "<b>bold</b>",
    },
    "xml": '<p class="c">hi</p>tail',
}


# --- client ids and loading ----------------------------------------------------------------------


def test_client_ids_are_32_bit():
    ids = {document.random_client_id() for _ in range(200)}
    assert all(0 < client_id < 2**32 for client_id in ids) and len(ids) > 190
    assert document.new_doc().client_id < 2**32
    assert document.new_doc(5).client_id == 5


def test_load_snapshot_plus_updates():
    source, updates = edits(3, "a", "b", "c", "d")
    state = document.merge(None, updates[:2])[0]
    doc = document.load(state, updates[2:])
    assert document.body_text(doc) == "abcd"
    assert document.state_vector(doc) == document.state_vector(source)
    assert document.body_text(document.load(None, [])) == ""
    assert document.body_text(document.load(None, iter(updates))) == "abcd"


def test_load_never_reuses_a_client_id_of_the_loaded_edits(monkeypatch):
    _, updates = edits(42, "x")
    picks = iter([42, 43])
    monkeypatch.setattr(document, "random_client_id", lambda: next(picks))
    assert document.load(None, updates).client_id == 43
    assert document.load(None, updates, client_id=42).client_id == 42  # asked for: as told


def test_load_names_the_update_that_does_not_apply():
    _, updates = edits(3, "a")
    with pytest.raises(InvalidUpdate, match="invalid update 1"):
        document.load(None, [updates[0], b"\x05junk"])
    with pytest.raises(InvalidUpdate, match="invalid snapshot"):
        document.load(b"\x05junk", updates)


# --- encoding, diff, merge -----------------------------------------------------------------------


def test_encode_state_vector_and_diff():
    a, _ = edits(1, "one ", "two")
    b = Doc(client_id=2)
    b.apply_update(document.encode_state(a))
    b.get("content", type=Text).insert(0, ">")
    # What b has that a lacks brings a up to date, and nothing more is missing afterwards.
    document.apply_update(a, document.diff(b, document.state_vector(a)))
    assert document.body_text(a) == document.body_text(b) == ">one two"
    assert document.decode_state_vector(document.state_vector(a)) == {1: 7, 2: 1}
    assert document.state_vector(Doc()) == document.EMPTY_STATE_VECTOR
    with pytest.raises(InvalidStateVector):
        document.diff(a, b"\xff\xff")


@pytest.mark.parametrize("bad", [b"", b"\x02\x01", b"\x01\xff", b"\x01\x80\x80\x80"])
def test_decode_state_vector_refuses_garbage(bad):
    with pytest.raises(InvalidStateVector):
        document.decode_state_vector(bad)


def test_merge_equals_applying_everything():
    source, updates = edits(9, *"the quick brown fox")
    state, vector = document.merge(None, updates)
    assert vector == document.state_vector(source)
    assert document.body_text(document.load(state, [])) == "the quick brown fox"
    # Merging onto a snapshot, and merging nothing.
    again, _ = document.merge(document.merge(None, updates[:5])[0], updates[5:])
    assert document.body_text(document.load(again, [])) == "the quick brown fox"
    assert document.merge(state, [])[1] == vector


def test_merge_keeps_updates_whose_dependencies_are_missing():
    # pycrdt leaves pending structs out of a Doc's encoding; a snapshot must still hold them.
    source, updates = edits(5, *(f"w{i} " for i in range(12)))
    gap = 4
    state, vector = document.merge(None, updates[:gap] + updates[gap + 1 :])
    assert document.decode_state_vector(vector) == {5: len("w0 w1 w2 w3 ")}
    doc = document.load(state, [updates[gap]])
    assert document.body_text(doc) == document.body_text(source)


# --- validation ----------------------------------------------------------------------------------


def test_validate_accepts_real_updates():
    _, updates = edits(3, "a", "b")
    for update in [*updates, b"\x00\x00", document.encode_state(rich_doc())]:
        document.validate_update(update)
    document.validate_update(bytearray(updates[0]))
    document.validate_update(updates[1])  # its dependency is missing: valid, and pending


@pytest.mark.parametrize(
    "bad", [b"", b"\x00", b"\xff", b"\x01", b"\x01\x01\x01\x01", "text", None, 5]
)
def test_validate_refuses_garbage(bad):
    with pytest.raises(InvalidUpdate):
        document.validate_update(bad)


def test_validate_refuses_truncated_updates():
    update = document.encode_state(rich_doc())
    for end in range(len(update) - 1):
        with pytest.raises(InvalidUpdate):
            document.validate_update(update[:end])


_SEEDS = [document.encode_state(rich_doc()), *edits(2**40, "ab", "cd")[1]]


@st.composite
def mutated_updates(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "insert" or not data:
            data.insert(at, draw(st.integers(0, 255)))
        elif action == "flip":
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        else:
            del data[min(at, len(data) - 1)]
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64) | mutated_updates())
def test_validate_is_total_over_bytes(data):
    try:
        document.validate_update(data)
    except InvalidUpdate:
        return
    # Whatever validates also loads, merges and renders.
    doc = document.load(None, [data])
    document.merge(None, [data])
    document.render(doc)


def a_real_panic() -> BaseException:
    """pyo3_runtime.PanicException cannot be imported: cause one (pycrdt panics on this)."""
    text = Doc().get("t", type=Text)
    try:
        del text[0:5]
    except BaseException as exc:  # noqa: BLE001 - the point is to capture it
        return exc
    raise AssertionError("pycrdt no longer panics here; find another panic")


class Refusing:
    """Stands in for a Doc whose apply_update raises ``exc``."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def apply_update(self, update: bytes) -> None:
        raise self.exc


def test_a_panic_becomes_invalid_update_and_nothing_else_is_swallowed():
    panic = a_real_panic()
    assert not isinstance(panic, Exception)  # a BaseException: `except Exception` misses it
    with pytest.raises(InvalidUpdate, match="invalid update"):
        document.apply_update(Refusing(panic), b"\x00\x00")
    with pytest.raises(InvalidUpdate):
        document.apply_update(Refusing(RuntimeError("Cannot apply update")), b"\x00\x00")
    with pytest.raises(KeyboardInterrupt):
        document.apply_update(Refusing(KeyboardInterrupt()), b"\x00\x00")
    with pytest.raises(TypeError):
        document.apply_update(Refusing(TypeError("a bug, not bad input")), b"\x00\x00")


# --- rendering -----------------------------------------------------------------------------------


def test_render_every_root_type():
    assert document.render(rich_doc()) == RICH_RENDERED


def test_render_a_doc_that_only_received_updates():
    # Roots that came in through updates have no type in pycrdt: it is inferred.
    loaded = document.load(document.encode_state(rich_doc()), [])
    assert {name: value for name, value in loaded.items()} == dict.fromkeys(RICH_RENDERED)
    assert document.render(loaded) == RICH_RENDERED
    assert document.root_types(loaded) == {
        "content": Text,
        "meta": Map,
        "items": Array,
        "xml": XmlFragment,
    }


def test_render_infers_types_across_clients_and_overwrites():
    a, b = Doc(client_id=1), Doc(client_id=2**50)
    a.get("m", type=Map)["k"] = "a"
    a.get("t", type=Text).insert(0, "hello")
    a.get("rich", type=Text).insert(0, "plain")
    b.apply_update(a.get_update())
    b.get("m", type=Map)["k"] = "b"  # its origin is a's item: no parent on the wire
    b.get("t", type=Text).insert(5, " world")
    a.apply_update(b.get_update(a.get_state()))
    a.get("m", type=Map)["z"] = [1]
    rich = a.get("rich", type=Text)
    rich.format(0, 2, {"bold": True})
    del a.get("t", type=Text)[0:1]
    loaded = document.load(document.encode_state(a), [])
    assert document.render(loaded) == document.render(a)
    assert document.render(loaded) == {
        "m": {"k": "b", "z": [1]},
        "rich": "plain",
        "t": "ello world",
    }


def test_roots_that_cannot_be_known_are_left_out():
    doc = Doc(client_id=4)
    text = doc.get("gone", type=Text)
    text += "bye"
    del text[0:3]
    doc.get("kept", type=Array).append(1)
    loaded = document.load(document.encode_state(doc), [])
    assert document.render(doc) == {"gone": "", "kept": [1]}  # the typed doc knows
    assert document.render(loaded) == {"kept": [1]}  # only deleted items: no evidence


def test_render_does_not_change_the_doc():
    loaded = document.load(document.encode_state(rich_doc()), [])
    seen: list[bytes] = []
    loaded.observe(lambda event: seen.append(event.update))
    before = document.state_vector(loaded)
    document.render(loaded)
    document.body_text(loaded)
    assert seen == [] and document.state_vector(loaded) == before


def test_body_text():
    assert document.body_text(Doc()) == ""
    doc, _ = edits(1, "Title\n", "body")
    assert document.body_text(doc) == "Title\nbody"
    assert document.body_text(document.load(document.encode_state(doc), [])) == "Title\nbody"


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x01\x01\x05\x00\x07\x01\x01x\x07\x63"])
def test_type_inference_gives_up_on_what_it_cannot_read(data):
    assert document._infer_root_types(data) == {}


_values = st.one_of(
    st.integers(-1000, 1000), st.text(max_size=4), st.booleans(), st.none(), st.binary(max_size=3)
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["text", "map", "array", "xml"]),
            st.integers(0, 2),
            st.text(alphabet="ab é😀", min_size=1, max_size=4),
            _values,
        ),
        min_size=1,
        max_size=25,
    ),
    st.integers(1, 2**53 - 1),
)
def test_rendering_a_loaded_doc_matches_the_doc_that_made_it(operations, client_id):
    doc = Doc(client_id=client_id)
    for kind, root, chunk, value in operations:
        name = f"{kind}{root}"
        if kind == "text":
            text = doc.get(name, type=Text)
            position = len(str(text)) // 2
            text.insert(len(str(text)[:position].encode()), chunk)
        elif kind == "map":
            doc.get(name, type=Map)[chunk] = value
        elif kind == "array":
            doc.get(name, type=Array).append(value)
        else:
            doc.get(name, type=XmlFragment).children.append(XmlElement(chunk.strip() or "p"))
    expected = document.render(doc)
    loaded = document.load(document.encode_state(doc), [])
    assert document.render(loaded) == expected
    assert pycrdt.get_state(document.encode_state(loaded)) == document.state_vector(doc)
