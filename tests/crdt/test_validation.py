"""crdt.validation: every update is read and checked before pycrdt sees it.

Each limit is tried at exactly the limit (accepted, then applied by pycrdt, read back and
rendered without crashing) and one past it (refused). Updates pycrdt cannot write (nested
past the limits, clocks past 32 bits, counts that lie) are hand-encoded (tests/crdt/yjs_v1).
"""

from __future__ import annotations

import pycrdt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crdt import document
from crdt.lib0 import MAX_VAR_UINT, write_var_uint
from crdt.validation import (
    ANY_DEPTH,
    CLOCK,
    COUNT,
    DEPENDENCY,
    STRING_BYTES,
    STRUCTS,
    STRUCTURE,
    TYPE_DEPTH,
    DepthTracker,
    Limits,
    UpdateRefused,
)
from tests.crdt import yjs_v1 as y
from tests.data import FIXTURES

DEFAULT = Limits()
CLIENT = 7


def check(update: bytes, limits: Limits = DEFAULT, *, strict: bool = False) -> None:
    DepthTracker(limits).check(update, strict=strict)


def refused(update: bytes, limits: Limits = DEFAULT, *, strict: bool = False) -> UpdateRefused:
    with pytest.raises(UpdateRefused) as info:
        check(update, limits, strict=strict)
    return info.value


def applied(update: bytes) -> pycrdt.Doc:
    """Checked (strict, on an empty doc), then applied by pycrdt and rendered."""
    DepthTracker().check(update)
    doc = pycrdt.Doc()
    doc.apply_update(update)
    document.render(doc)
    return doc


def root_item(ref: int, content: bytes, root: str = "r", clock: int = 0, **kw) -> bytes:
    return y.update([(CLIENT, clock, [y.item(ref, content, root=root, **kw)])])


# --- every content kind ------------------------------------------------------------------------


def test_every_content_kind_pycrdt_writes_is_accepted():
    doc = pycrdt.Doc(client_id=CLIENT)
    text = doc.get("text", type=pycrdt.Text)
    text.insert(0, "hello wörld 😀")
    text.format(0, 5, {"bold": True})
    text.insert_embed(3, {"image": "x.png"})
    root_map = doc.get("map", type=pycrdt.Map)
    root_map["number"] = 1.5
    root_map["json"] = {"a": [1, 2, {"b": None}], "c": "d"}
    root_map["bytes"] = b"\x00\x01"
    root_map["nested"] = pycrdt.Map({"inner": pycrdt.Array([1, 2])})
    root_map["sub"] = pycrdt.Doc()
    array = doc.get("array", type=pycrdt.Array)
    array.extend([1, "two", True, None, [3, 4]])
    array.append(pycrdt.Text("nested text"))
    xml = doc.get("xml", type=pycrdt.XmlFragment)
    paragraph = xml.children.append(pycrdt.XmlElement("p", {"class": "x"}))
    paragraph.children.append(pycrdt.XmlText("in a paragraph"))
    del text[0:2]  # a delete set, and deleted items
    del array[0]
    root_map["number"] = 2  # an overwritten key: a deleted item
    state = doc.get_update()
    DepthTracker().scan(state)
    applied(state)


def test_hand_encoded_kinds_are_accepted_and_apply():
    kinds = [
        (y.DELETED, y.deleted(3)),
        (y.BINARY, y.binary(b"\x00\xff")),
        (y.STRING, y.string("abc")),
        (y.EMBED, y.embed('{"a":[1]}')),
        (y.FORMAT, y.format_("bold", "true")),
        (y.TYPE, y.type_(y.MAP)),
        (y.TYPE, y.type_(y.XML_ELEMENT, "p")),
        (y.TYPE, y.type_(y.XML_HOOK, "h")),
        (y.TYPE, y.type_(y.XML_TEXT)),
        (y.ANY, y.any_content([y.any_value({"a": [1, 2.5, "x", b"y", None, True]})])),
        (y.DOC, y.doc("guid-1", y.any_value({"gc": True}))),
    ]
    for ref, content in kinds:
        applied(root_item(ref, content))
    # GC and skip structs, and a delete set
    gc_skip = y.update([(CLIENT, 0, [y.gc(2)])], deletes=[(CLIENT, [(0, 2)])])
    applied(gc_skip)
    check(y.update([(CLIENT, 0, [y.skip(2), y.item(y.STRING, y.string("x"), root="r")])]))


def test_json_content_and_unknown_refs_are_refused():
    # yrs reads one string more than ContentJSON announces: what it decoded would differ.
    assert refused(root_item(y.JSON, y.json_content(['"a"']))).limit == STRUCTURE
    assert refused(root_item(11, b"")).limit == STRUCTURE
    assert refused(root_item(y.TYPE, bytes([7]))).limit == STRUCTURE
    # GC and skip are exactly info 0 and 10: other bits make them items yrs reads otherwise
    assert refused(y.update([(CLIENT, 0, [bytes([0x80]) + write_var_uint(1)])])).limit == STRUCTURE


def test_malformed_updates_are_refused_as_invalid():
    for update in (b"", b"\x01", b"\x01\x01\x07\x00\x04", b"\xff" * 9):
        error = refused(update)
        assert error.limit == STRUCTURE and not error.too_big
    bad_utf8 = root_item(y.STRING, write_var_uint(2) + b"\xc3\x28")
    assert "UTF-8" in str(refused(bad_utf8))
    assert refused(root_item(y.DELETED, y.deleted(0))).limit == STRUCTURE  # length 0
    assert refused(root_item(y.ANY, y.any_content([]))).limit == STRUCTURE


# --- Any nesting -------------------------------------------------------------------------------


def test_any_nesting_at_the_limit_applies_and_one_more_is_refused():
    limit = DEFAULT.any_depth
    doc = applied(root_item(y.ANY, y.any_content([y.nested_any(limit)])))
    value = doc.get("r", type=pycrdt.Array).to_py()[0]
    depth = 0
    while isinstance(value, list):
        depth, value = depth + 1, (value[0] if value else None)
    assert depth == limit
    error = refused(root_item(y.ANY, y.any_content([y.nested_any(limit + 1)])))
    assert (error.limit, error.too_big) == (ANY_DEPTH, False)


def test_the_crashing_any_is_refused_without_recursion():
    # About 80 KB: the update that made pycrdt overflow its stack (SIGSEGV).
    update = root_item(y.ANY, y.any_content([y.nested_any(40_000)]))
    assert refused(update).limit == ANY_DEPTH
    with pytest.raises(document.InvalidUpdate):
        document.validate_update(update)
    with pytest.raises(UpdateRefused):
        document.load(None, [update])  # pycrdt never reads it: this would crash


def test_objects_and_subdocument_options_count_as_any_nesting():
    nested: object = {}
    for _ in range(DEFAULT.any_depth - 1):
        nested = {"k": nested}
    applied(root_item(y.ANY, y.any_content([y.any_value(nested)])))
    assert refused(root_item(y.ANY, y.any_content([y.any_value({"k": nested})]))).limit == (
        ANY_DEPTH
    )
    assert refused(root_item(y.DOC, y.doc("g", y.nested_any(DEFAULT.any_depth + 1)))).limit == (
        ANY_DEPTH
    )


def test_json_payloads_of_embeds_and_formats_are_bounded_too():
    limit = DEFAULT.any_depth
    at_limit = "[" * limit + "]" * limit
    past = "[" * (limit + 1) + "]" * (limit + 1)
    applied(root_item(y.EMBED, y.embed(at_limit)))
    applied(root_item(y.FORMAT, y.format_("k", at_limit)))
    assert refused(root_item(y.EMBED, y.embed(past))).limit == ANY_DEPTH
    assert refused(root_item(y.FORMAT, y.format_("k", past))).limit == ANY_DEPTH
    # brackets inside JSON strings are not nesting
    applied(root_item(y.EMBED, y.embed('"' + "[" * (limit + 5) + '"')))


@st.composite
def any_values(draw, depth: int = 0, max_depth: int = 8):
    if depth >= max_depth or draw(st.integers(0, 3)) == 0:
        return draw(
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(-(2**31), 2**31 - 1),
                st.floats(allow_nan=False),
                st.text(max_size=5),
                st.binary(max_size=5),
            )
        )
    if draw(st.booleans()):
        return draw(st.lists(any_values(depth + 1, max_depth), max_size=3))
    keys = st.text(max_size=3)
    return draw(st.dictionaries(keys, any_values(depth + 1, max_depth), max_size=3))


def nesting(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((nesting(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((nesting(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=any_values(), limit=st.integers(1, 6))
def test_any_nesting_is_refused_exactly_past_the_limit(value, limit):
    limits = Limits(any_depth=limit)
    update = root_item(y.ANY, y.any_content([y.any_value(value)]))
    if nesting(value) > limit:
        assert refused(update, limits).limit == ANY_DEPTH
        return
    check(update, limits)
    doc = pycrdt.Doc()
    doc.apply_update(update)
    assert nesting(doc.get("r", type=pycrdt.Array).to_py()[0]) == nesting(value)


@settings(max_examples=100, deadline=None)
@given(value=any_values(max_depth=5))
def test_values_pycrdt_writes_pass_at_their_own_depth(value):
    doc = pycrdt.Doc()
    doc.get("m", type=pycrdt.Map)["v"] = value
    update = doc.get_update()
    check(update, Limits(any_depth=max(1, nesting(value))))
    if nesting(value) > 1:
        assert refused(update, Limits(any_depth=nesting(value) - 1)).limit == ANY_DEPTH


# --- type nesting ------------------------------------------------------------------------------


def nested_xml(depth: int, client: int = CLIENT) -> bytes:
    """XmlElements ``depth`` deep in the root fragment "x", in one update."""
    structs = [y.item(y.TYPE, y.type_(y.XML_ELEMENT, "p"), root="x")]
    structs += [
        y.item(y.TYPE, y.type_(y.XML_ELEMENT, "p"), parent=(client, level - 1))
        for level in range(1, depth)
    ]
    return y.update([(client, 0, structs)])


def test_type_nesting_at_the_limit_applies_renders_and_deletes_and_one_more_is_refused():
    limit = DEFAULT.type_depth
    doc = applied(nested_xml(limit))
    assert str(doc.get("x", type=pycrdt.XmlFragment)).count("<p>") == limit
    # deleting the outer element walks every level
    doc.get("x", type=pycrdt.XmlFragment).children.__delitem__(0)
    assert str(doc.get("x", type=pycrdt.XmlFragment)) == ""
    error = refused(nested_xml(limit + 1))
    assert (error.limit, error.too_big) == (TYPE_DEPTH, False)


def test_the_crashing_xml_is_refused():
    # 100,000 levels: stored, it crashed the server whenever the note was rendered.
    update = nested_xml(100_000)
    assert refused(update).limit == TYPE_DEPTH
    with pytest.raises(UpdateRefused):
        document.load(None, [update])


def test_type_nesting_holds_across_updates_one_level_at_a_time():
    limit = DEFAULT.type_depth
    tracker = DepthTracker()
    doc = pycrdt.Doc()
    for level in range(limit + 1):
        if level == 0:
            struct = y.item(y.TYPE, y.type_(y.XML_ELEMENT, "p"), root="x")
        else:
            struct = y.item(y.TYPE, y.type_(y.XML_ELEMENT, "p"), parent=(CLIENT, level - 1))
        update = y.update([(CLIENT, level, [struct])])
        if level == limit:
            assert refused_by(tracker, update).limit == TYPE_DEPTH
            break
        tracker.commit(tracker.check(update))
        doc.apply_update(update)
    assert str(doc.get("x", type=pycrdt.XmlFragment)).count("<p>") == limit
    # Typing at the deepest level, with origins instead of a parent, stays allowed.
    deepest = pycrdt.Doc()
    deepest.apply_update(doc.get_update())
    before = deepest.get_state()
    element = deepest.get("x", type=pycrdt.XmlFragment).children[0]
    for _ in range(limit - 1):
        element = element.children[0]
    element.children.append(pycrdt.XmlText("deep"))  # a type at the limit + 1: refused
    assert refused_by(tracker, deepest.get_update(before)).limit == TYPE_DEPTH


def refused_by(tracker: DepthTracker, update: bytes) -> UpdateRefused:
    with pytest.raises(UpdateRefused) as info:
        tracker.check(update)
    return info.value


def test_a_tracker_built_from_a_stored_state_knows_the_depths():
    limit = 5
    doc = pycrdt.Doc(client_id=CLIENT)
    node = doc.get("m", type=pycrdt.Map)
    for _ in range(limit):
        node["k"] = pycrdt.Map()
        node = node["k"]
    tracker = DepthTracker(Limits(type_depth=limit))
    tracker.scan(doc.get_update())
    before = doc.get_state()
    node["v"] = "a value inside the deepest map is fine"
    tracker.commit(tracker.check(doc.get_update(before)))
    before = doc.get_state()
    node["k"] = pycrdt.Array()
    assert refused_by(tracker, doc.get_update(before)).limit == TYPE_DEPTH


KINDS = st.sampled_from(["map", "array"])


@settings(max_examples=150, deadline=None)
@given(kinds=st.lists(KINDS, min_size=1, max_size=9), limit=st.integers(1, 7), split=st.booleans())
def test_type_nesting_built_with_pycrdt_is_refused_exactly_past_the_limit(kinds, limit, split):
    """Maps and arrays inside each other, in one update or one level per update."""
    doc = pycrdt.Doc(client_id=CLIENT)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    parent = doc.get("root", type=pycrdt.Map)

    def nest(parent, kind):
        child = pycrdt.Map() if kind == "map" else pycrdt.Array()
        if isinstance(parent, pycrdt.Map):
            parent["k"] = child
            return parent["k"]
        parent.append(child)
        return parent[len(parent) - 1]

    if split:
        for kind in kinds:
            parent = nest(parent, kind)
    else:
        with doc.transaction():
            for kind in kinds:
                parent = nest(parent, kind)
    tracker = DepthTracker(Limits(type_depth=limit))
    for level, update in enumerate(updates, start=1):
        deepest = level if split else len(kinds)
        if deepest > limit:
            assert refused_by(tracker, update).limit == TYPE_DEPTH
            return
        tracker.commit(tracker.check(update))
    assert len(kinds) <= limit


# --- clocks ------------------------------------------------------------------------------------

LAST = 2**32 - 1  # the largest clock yrs can hold


def test_clocks_end_below_2_to_the_32():
    # A struct ending at 2**32 - 1 is the last one yrs can hold; one more wraps its clock.
    at_limit = root_item(y.STRING, y.string("x"), clock=LAST - 1)
    check(at_limit)
    doc = pycrdt.Doc()
    doc.apply_update(at_limit)  # yrs takes it (past the client's clock); it does not crash
    for clock in (LAST, 2**32, MAX_VAR_UINT - 1):
        assert refused(root_item(y.STRING, y.string("x"), clock=clock)).limit == CLOCK
    assert refused(y.update([(CLIENT, LAST - 1, [y.gc(2)])])).limit == CLOCK


def test_referenced_ids_and_deletions_stay_below_2_to_the_32():
    check(y.update([(CLIENT, 0, [y.item(y.STRING, y.string("x"), origin=(3, LAST))])]))
    for clock in (2**32, MAX_VAR_UINT):
        for side in ("origin", "right", "parent"):
            update = y.update(
                [(CLIENT, 0, [y.item(y.STRING, y.string("x"), **{side: (3, clock)})])]
            )
            assert refused(update).limit == CLOCK
    check(y.update([], deletes=[(3, [(LAST - 5, 5)])]))
    assert refused(y.update([], deletes=[(3, [(LAST - 5, 6)])])).limit == CLOCK
    assert refused(y.update([], deletes=[(3, [(MAX_VAR_UINT, 1)])])).limit == CLOCK


def test_state_vector_clocks_stay_below_2_to_the_32():
    from crdt import protocol

    ok = write_var_uint(1) + write_var_uint(5) + write_var_uint(LAST)
    assert document.decode_state_vector(ok) == {5: LAST}
    assert protocol.decode_state_vector(ok) == {5: LAST}
    for clock in (2**32, MAX_VAR_UINT):
        bad = write_var_uint(1) + write_var_uint(5) + write_var_uint(clock)
        with pytest.raises(document.InvalidStateVector):
            document.decode_state_vector(bad)
        with pytest.raises(protocol.ProtocolError):
            protocol.decode_state_vector(bad)
        with pytest.raises(document.InvalidStateVector):
            document.diff(pycrdt.Doc(), bad)


def test_an_update_at_the_last_clock_of_another_client_is_refused_in_a_live_doc():
    """The attack: an update at clock 2**32 - 1 under a bystander's id (visible in awareness)
    made yrs drop that client's next edits, then panic. Past the client's clock at all, it
    is refused: yrs would move the client's clock there (Yjs keeps it pending)."""
    bystander = pycrdt.Doc(client_id=99)
    bystander.get("content", type=pycrdt.Text).insert(0, "hi")
    tracker = DepthTracker()
    tracker.commit(tracker.check(bystander.get_update()))
    for clock in (3, 2**31, LAST - 1):  # "hi" holds clocks 0 and 1: 2 is next
        update = y.update([(99, clock, [y.item(y.STRING, y.string("x"), root="content")])])
        error = refused_by(tracker, update)
        assert error.limit == DEPENDENCY and not error.too_big
    attack = y.update([(99, LAST, [y.item(y.STRING, y.string("x"), root="content")])])
    assert refused_by(tracker, attack).limit == CLOCK


def test_missing_dependencies_are_refused_when_strict_and_kept_when_stored():
    update = y.update([(CLIENT, 0, [y.item(y.STRING, y.string("x"), origin=(3, 4))])])
    assert refused(update, strict=True).limit == DEPENDENCY
    check(update, strict=False)
    right = y.update([(CLIENT, 0, [y.item(y.STRING, y.string("x"), right=(3, 4))])])
    assert refused(right, strict=True).limit == DEPENDENCY
    parent = y.update([(CLIENT, 0, [y.item(y.STRING, y.string("x"), parent=(3, 4))])])
    assert refused(parent, strict=True).limit == DEPENDENCY


def test_deleting_items_the_document_lacks_is_refused_when_strict_and_kept_when_stored():
    """yrs keeps such a deletion pending, in memory only: the doc's encoding does not carry
    it, no transaction stores or broadcasts it, and it deletes the items when they arrive.
    A room would then hold what neither its log nor its peers hold."""
    doc = pycrdt.Doc(client_id=CLIENT)
    doc.get("content", type=pycrdt.Text).insert(0, "abc")  # clocks 0-2
    tracker = DepthTracker()
    tracker.scan(doc.get_update())
    for ranges in ([(2, 2)], [(3, 1)], [(0, 1), (5, 1)]):
        error = refused_by(tracker, y.update([], deletes=[(CLIENT, ranges)]))
        assert error.limit == DEPENDENCY and "deletes" in str(error)
    assert refused_by(tracker, y.update([], deletes=[(99, [(0, 1)])])).limit == DEPENDENCY
    tracker.check(y.update([], deletes=[(CLIENT, [(0, 3)])]))
    check(y.update([], deletes=[(99, [(0, 1)])]), strict=False)
    # Items of the update itself may be deleted by it.
    more = y.update(
        [(CLIENT, 3, [y.item(y.STRING, y.string("de"), origin=(CLIENT, 2))])],
        deletes=[(CLIENT, [(2, 3)])],
    )
    tracker.check(more)


# --- characters past U+FFFF ----------------------------------------------------------------------

# "ab", U+1F600 (units 2 and 3), "cd", U+1F601 (units 6 and 7): client 1's clocks 0-7.
ASTRAL = "ab\U0001f600cd\U0001f601"


def astral_note() -> tuple[pycrdt.Doc, DepthTracker]:
    doc = pycrdt.Doc(client_id=1)
    doc.get("content", type=pycrdt.Text).insert(0, ASTRAL)
    tracker = DepthTracker()
    tracker.scan(doc.get_update())
    return doc, tracker


def test_pycrdt_keeps_a_text_it_cannot_encode_once_a_pair_is_cut():
    """Why the check exists: after a deletion from the middle of a surrogate pair, yrs
    encodes the text one clock longer than its own state vector says. A client joining later
    gets that clock and takes the next real edit of its author for a duplicate."""
    doc, _ = astral_note()
    doc.apply_update(y.update([], deletes=[(1, [(3, 5)])]))
    assert document.decode_state_vector(doc.get_state()) == {1: 8}
    joined = pycrdt.Doc()
    joined.apply_update(doc.get_update())
    assert document.decode_state_vector(joined.get_state()) == {1: 9}


@pytest.mark.parametrize(
    "deletes",
    [[(3, 1)], [(3, 5)], [(0, 3)], [(7, 1)], [(6, 1)], [(0, 1), (5, 2)]],
    ids=[
        "low half",
        "low half to end",
        "up to high half",
        "last low half",
        "last high half",
        "second range",
    ],
)
def test_a_deletion_that_cuts_a_pair_is_refused(deletes):
    _, tracker = astral_note()
    error = refused_by(tracker, y.update([], deletes=[(1, deletes)]))
    assert error.limit == STRUCTURE and not error.too_big
    assert "in two" in str(error)


@pytest.mark.parametrize("deletes", [[(2, 2)], [(0, 8)], [(4, 2)], [(6, 2)], [(0, 2)]])
def test_a_deletion_of_whole_characters_is_accepted(deletes):
    doc, tracker = astral_note()
    update = y.update([], deletes=[(1, deletes)])
    tracker.commit(tracker.check(update))
    doc.apply_update(update)
    joined = pycrdt.Doc()
    joined.apply_update(doc.get_update())
    assert joined.get_state() == doc.get_state()


@pytest.mark.parametrize(
    "where",
    [{"origin": (1, 2)}, {"right": (1, 3)}, {"origin": (1, 1), "right": (1, 3)}],
    ids=["after the high half", "before the low half", "right origin inside"],
)
def test_an_insertion_between_the_halves_is_refused(where):
    _, tracker = astral_note()
    update = y.update([(2, 0, [y.item(y.STRING, y.string("x"), **where)])])
    assert refused_by(tracker, update).limit == STRUCTURE


def test_insertions_beside_whole_characters_are_accepted():
    _, tracker = astral_note()
    for client, where in enumerate(
        [{"origin": (1, 3)}, {"right": (1, 2)}, {"origin": (1, 1), "right": (1, 2)}], start=2
    ):
        tracker.check(y.update([(client, 0, [y.item(y.STRING, y.string("x"), **where)])]))


def test_an_update_cutting_a_pair_of_its_own_or_repeating_one_in_part_is_refused():
    own = y.update(
        [(5, 0, [y.item(y.STRING, y.string("\U0001f600"), root="content")])],
        deletes=[(5, [(1, 1)])],
    )
    assert refused(own, strict=True).limit == STRUCTURE
    # The note has client 1's clocks 0-2 (a, b and a high half it cannot have: the stored
    # text ends whole). Another text at clocks 0-3 would be taken from clock 3 on: a cut.
    _, tracker = astral_note()
    tracker.ends[1] = 3
    overlap = y.update([(1, 0, [y.item(y.STRING, y.string("xy\U0001f600"), root="content")])])
    assert refused_by(tracker, overlap).limit == STRUCTURE


def test_stored_content_with_a_cut_pair_still_loads():
    doc, _ = astral_note()
    tracker = DepthTracker()
    tracker.scan(doc.get_update())
    tracker.scan(y.update([], deletes=[(1, [(3, 1)])]))  # lenient: stored notes load
    assert tracker.pairs == {1: {3, 7}}


# --- counts and lengths ------------------------------------------------------------------------


def test_huge_announced_counts_are_refused_before_anything_is_allocated():
    for count in (2**40, MAX_VAR_UINT):
        error = refused(root_item(y.ANY, write_var_uint(count) + b"\x7e"))
        assert (error.limit, error.too_big) == (COUNT, True)
        error = refused(root_item(y.ANY, y.any_content([b"\x75" + write_var_uint(count)])))
        assert (error.limit, error.too_big) == (COUNT, True)
        assert refused(write_var_uint(count) + b"\x00").limit == COUNT
        assert refused(y.update([])[:-1] + write_var_uint(count)).limit == COUNT
    # a count within the setting but more than the bytes left: malformed
    error = refused(root_item(y.ANY, write_var_uint(1000) + b"\x7e"))
    assert (error.limit, error.too_big) == (STRUCTURE, False)


def test_counts_at_the_limit_are_accepted_and_one_more_is_refused():
    limits = Limits(count=10)
    ten = root_item(y.ANY, y.any_content([y.any_value(list(range(10)))]))
    check(ten, limits)
    applied(ten)
    eleven = root_item(y.ANY, y.any_content([y.any_value(list(range(11)))]))
    assert refused(eleven, limits).limit == COUNT
    entries = root_item(y.ANY, y.any_content([y.any_value({str(i): i for i in range(11)})]))
    assert refused(entries, limits).limit == COUNT
    values = root_item(y.ANY, y.any_content([y.any_value(i) for i in range(11)]))
    assert refused(values, limits).limit == COUNT


def test_string_lengths_at_the_limit_are_accepted_and_one_more_is_refused():
    limits = Limits(string_bytes=10)
    check(root_item(y.STRING, y.string("é" * 5)), limits)
    assert refused(root_item(y.STRING, y.string("x" * 11)), limits).limit == STRING_BYTES
    assert refused(root_item(y.BINARY, y.binary(b"x" * 11)), limits).limit == STRING_BYTES
    for value in ("x" * 11, b"x" * 11):
        assert refused(root_item(y.ANY, y.any_content([y.any_value(value)])), limits).too_big
    assert refused(root_item(y.STRING, y.string("x"), root="r" * 11), limits).too_big


def chain(structs: int) -> bytes:
    """One-character structs, each after the previous: the shape yrs integrates in
    quadratic time."""
    first = y.item(y.STRING, y.string("a"), root="content")
    rest = [y.item(y.STRING, y.string("a"), origin=(CLIENT, i - 1)) for i in range(1, structs)]
    return y.update([(CLIENT, 0, [first, *rest])])


def test_structs_per_live_update_are_bounded_and_stored_notes_are_not():
    limits = Limits(structs=50)
    check(chain(50), limits, strict=True)
    assert str(applied(chain(50)).get("content", type=pycrdt.Text)) == "a" * 50
    too_many = refused(chain(51), limits, strict=True)
    assert (too_many.limit, too_many.too_big) == (STRUCTS, True)
    check(chain(51), limits)  # a stored note is read whatever its size


def test_the_whole_automerge_paper_document_fits_in_one_live_update():
    state = (FIXTURES / "yrs-bench-input" / "b4-update.bin").read_bytes()
    DepthTracker(DEFAULT).check(state, strict=True)


# --- the tracker stays small for plain text ----------------------------------------------------


def test_a_plain_text_note_tracks_one_clock_per_client():
    doc = pycrdt.Doc(client_id=CLIENT)
    text = doc.get("content", type=pycrdt.Text)
    tracker = DepthTracker()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for index in range(200):
        text.insert(index // 2, "ab")
        if index % 7 == 0:
            del text[0:1]
    for update in updates:
        tracker.commit(tracker.check(update))
    assert document.decode_state_vector(doc.get_state()) == tracker.ends
    assert tracker.deep == {}


def test_the_deepest_note_the_limits_allow_renders():
    """Maps nested to the type limit holding a value nested to the Any limit: accepted, and
    rendered as JSON (Python recursion too) without trouble."""
    doc = pycrdt.Doc(client_id=CLIENT)
    node = doc.get("m", type=pycrdt.Map)
    for _ in range(DEFAULT.type_depth):
        node["k"] = pycrdt.Map()
        node = node["k"]
    value: object = []
    for _ in range(DEFAULT.any_depth - 1):
        value = [value]
    node["v"] = value
    update = doc.get_update()
    check(update)
    loaded = document.load(None, [update])
    rendered = document.render(loaded)["m"]
    for _ in range(DEFAULT.type_depth):
        rendered = rendered["k"]
    assert nesting(rendered["v"]) == DEFAULT.any_depth
