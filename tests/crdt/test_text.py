import itertools
import random

import pycrdt
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import text

ALPHABET = st.sampled_from(list("ab \né😀\u0301x\n"))
TEXTS = st.text(ALPHABET, max_size=60)


def body(initial: str) -> tuple[pycrdt.Doc, pycrdt.Text]:
    doc = pycrdt.Doc()
    t = doc.get("content", type=pycrdt.Text)
    t.insert(0, initial)
    return doc, t


@settings(max_examples=400)
@given(TEXTS, TEXTS)
def test_replace_turns_any_text_into_any_other(old, new):
    doc, t = body(old)
    with doc.transaction():
        text.replace(t, new)
    assert str(t) == new


@settings(max_examples=200)
@given(TEXTS, TEXTS, TEXTS)
def test_a_replace_merges_with_a_concurrent_edit_elsewhere(base, replacement, typed):
    # Two peers start from base + "|" + tail; one replaces the head, the other types in the tail.
    start = base + "|tail"
    server_doc, server_text = body(start)
    browser_doc = pycrdt.Doc()
    browser_doc.apply_update(server_doc.get_update())
    browser_text = browser_doc.get("content", type=pycrdt.Text)
    with server_doc.transaction():
        text.replace(server_text, replacement + "|tail")
    text.insert(browser_text, len(start), typed)
    server_doc.apply_update(browser_doc.get_update())
    browser_doc.apply_update(server_doc.get_update())
    assert str(server_text) == str(browser_text) == replacement + "|tail" + typed


def test_diff_is_small_for_a_small_change():
    old = "line one\nline two\nline three\n" * 2000
    new = old.replace("line two", "line 2", 1)
    edits = text.diff(old, new)
    assert sum(count for _, count, _ in edits) <= 3
    assert text.diff(old, old) == []


def test_large_rewrites_use_line_matching_and_stay_correct():
    old = "".join(f"{n} alpha\n" for n in range(20_000))
    new = "".join(f"{n} {'beta' if n % 100 == 0 else 'alpha'}\n" for n in range(20_000))
    doc, t = body(old)
    with doc.transaction():
        text.replace(t, new)
    assert str(t) == new


def test_insert_counts_code_points():
    _doc, t = body("héllo 😀!")
    text.insert(t, 2, "X")
    text.insert(t, 8, "Y")
    text.insert(t, None, "$")
    text.insert(t, 999, "#")
    assert str(t) == "héXllo 😀Y!$#"


def _apply(old: str, edits: list[text.Edit]) -> str:
    for position, count, insert in reversed(edits):
        old = old[:position] + insert + old[position + count :]
    return old


@settings(max_examples=300)
@given(TEXTS, TEXTS)
def test_diff_spans_are_ordered_and_apply(old, new):
    edits = text.diff(old, new)
    assert _apply(old, edits) == new
    # A deletion next to an insertion is one edit: no two edits touch.
    assert all(a[0] + a[1] < b[0] for a, b in itertools.pairwise(edits))


def test_a_replacement_is_one_edit():
    assert _apply("abcXdef", text.diff("abcXdef", "abcYdef")) == "abcYdef"
    assert text.diff("abcXdef", "abcYdef") == [(3, 1, "Y")]


def test_past_the_line_limit_the_middle_is_one_edit():
    old = "a\n" * (text.LINE_DIFF_LIMIT // 2 + 10) + "x" * text.CHAR_DIFF_LIMIT
    new = "b\n" * (text.LINE_DIFF_LIMIT // 2 + 10) + "y" * text.CHAR_DIFF_LIMIT
    edits = text.diff(old, new)
    assert edits == [(0, len(old), new)]


def _prose(rng: random.Random, size: int, lines: bool) -> str:
    words, length = [], 0
    while length < size:
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzé") for _ in range(rng.randint(1, 9)))
        words.append(word + ("\n" if lines and rng.random() < 0.1 else ""))
        length += len(words[-1]) + 1
    return " ".join(words)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 8), st.booleans())
def test_scattered_edits_of_a_long_note_come_back_as_those_edits(seed, count, lines):
    rng = random.Random(seed)  # hypothesis's own randoms draw every value through it: slow
    # Past PIECE characters the middle is cut at anchors (crdt/text.py): the diff still applies,
    # and is no larger than the edits made (an edit may come back as two of the same cost: a
    # deleted "e a" of "the apple" can as well be two deletions).
    old = _prose(rng, rng.randint(text.PIECE, 24_000), lines)
    new, cost = old, 0
    for position in sorted(rng.sample(range(len(old)), count), reverse=True):
        insert = f"<{rng.randint(0, 10**6)}>" if rng.random() < 0.7 else ""
        cut = rng.randint(0 if insert else 1, 20)
        cost += len(insert) + len(new[position : position + cut])
        new = new[:position] + insert + new[position + cut :]
    edits = text.diff(old, new)
    assert _apply(old, edits) == new
    assert all(a[0] + a[1] < b[0] for a, b in itertools.pairwise(edits))
    assert sum(deleted + len(insert) for _, deleted, insert in edits) <= cost


REPETITIVE = st.text(st.sampled_from("ab\n😀"), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(REPETITIVE, st.integers(200, 2000), st.lists(st.tuples(st.integers(0), TEXTS), max_size=6))
def test_long_repetitive_texts_without_anchors_still_diff_exactly(unit, times, changes):
    # No stretch is found once in each text: lines, then characters, are matched instead.
    old = unit * times
    new = old
    for position, insert in changes:
        at = position % (len(new) + 1)
        new = new[:at] + insert + new[at + len(insert) :]
    edits = text.diff(old, new)
    assert _apply(old, edits) == new
    assert all(a[0] + a[1] < b[0] for a, b in itertools.pairwise(edits))


def test_a_long_line_edited_in_many_places_is_not_rewritten_whole():
    # 20,000 characters in one line, four insertions: before the anchors, past the character
    # limit with no lines to match, this was one edit replacing 14,000 characters.
    rng = random.Random(3)
    old = _prose(rng, 20_000, lines=False)
    new = old[:2000] + "one" + old[2000:9000] + "two" + old[9000:15000] + "three" + old[15000:]
    assert text.diff(old, new) == [(2000, 0, "one"), (9000, 0, "two"), (15000, 0, "three")]
