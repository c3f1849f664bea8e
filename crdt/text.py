"""Text edits as Y operations: the smallest change that turns one text into another, and
positions in Unicode code points converted to the UTF-8 byte offsets pycrdt's Text takes.

Editing through a diff instead of replacing the whole text is what lets a REST edit merge with
what people type in the browser at the same moment: only the spans that really changed are
deleted or inserted.
"""

from __future__ import annotations

from collections.abc import Sequence

from pycrdt import Text
from rapidfuzz.distance import Indel

Edit = tuple[int, int, str]  # position (code points in the old text), delete count, insert

# Matching is rapidfuzz's bit-parallel longest common subsequence: its time grows with the
# product of the two lengths (3,000 x 3,000 characters: about 1 ms; 10,000 x 10,000: 12 ms), and
# it holds the GIL throughout, so every room of the process waits for it (the indexer diffs each
# edited note every couple of seconds; a REST text replace diffs on the event loop). So a large
# changed middle is cut first, at a stretch of ANCHOR characters found exactly once in each text
# (the way patience diff matches unique lines), until the pieces are at most PIECE characters:
# edits scattered through a long note cost a few string searches, not a product of lengths.
# Where no anchor is found (repetitive text, a rewrite): lines are matched first, then
# characters inside changed blocks; a match of more than CHAR_DIFF_LIMIT characters or
# LINE_DIFF_LIMIT lines (both texts together) is not made: the middle is replaced as one edit,
# which is also what a rewrite is better told as than thousands of one-letter edits.
PIECE = 1_000
ANCHOR = 32
# Where in the old middle an anchor is looked for: halves first, so the pieces stay balanced.
ANCHOR_AT = (0.5, 0.25, 0.75, 0.125, 0.375, 0.625, 0.875)
CHAR_DIFF_LIMIT = 6_000
LINE_DIFF_LIMIT = 6_000


def diff(old: str, new: str) -> list[Edit]:
    """Edits, in increasing position, that turn ``old`` into ``new``."""
    edits: list[Edit] = []
    _diff(old, new, 0, edits)
    return edits


def _diff(a: str, b: str, base: int, edits: list[Edit], *, lines: bool = True) -> None:
    """Append the edits turning a into b (a starts at ``base`` in the old text); ``lines``:
    whether lines may still be matched (not inside a block that line matching left)."""
    start = _common_prefix(a, b)
    # The common end, outside the common start: the common start of the reversed texts.
    end = min(_common_prefix(a[::-1], b[::-1]), min(len(a), len(b)) - start)
    a, b = a[start : len(a) - end], b[start : len(b) - end]
    base += start
    if not a or not b:
        if a or b:
            edits.append((base, len(a), b))
        return
    if len(a) + len(b) > PIECE:
        anchor = _anchor(a, b)
        if anchor is not None:
            i, j = anchor  # a[i : i + ANCHOR] == b[j : j + ANCHOR]: kept, so no edits touch
            _diff(a[:i], b[:j], base, edits, lines=lines)
            _diff(a[i + ANCHOR :], b[j + ANCHOR :], base + i + ANCHOR, edits, lines=lines)
            return
        if lines and "\n" in a and "\n" in b:
            _line_edits(a, b, base, edits)
            return
        if len(a) + len(b) > CHAR_DIFF_LIMIT:
            edits.append((base, len(a), b))
            return
    edits += [(base + i, n, s) for i, n, s in _char_edits(a, b)]


def _anchor(a: str, b: str) -> tuple[int, int] | None:
    """Where a stretch of a, near its middle, is in b, when it is in each text exactly once."""
    if len(a) < 2 * ANCHOR or len(b) < ANCHOR:
        return None
    for fraction in ANCHOR_AT:
        i = min(int(len(a) * fraction), len(a) - ANCHOR)
        key = a[i : i + ANCHOR]
        j = b.find(key)
        if j >= 0 and b.find(key, j + 1) < 0 and a.find(key) == i and a.find(key, i + 1) < 0:
            return i, j
    return None


def _common_prefix(a: str, b: str) -> int:
    """Length of the common start of a and b. Slices are compared by halves (memcmp in C):
    a typist's text differs from its last indexed copy near the end, after thousands of equal
    characters a loop in Python would step through one by one."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _char_edits(a: str, b: str) -> list[Edit]:
    return [(i1, i2 - i1, b[j1:j2]) for i1, i2, j1, j2 in _changed_spans(a, b)]


def _line_edits(a: str, b: str, base: int, edits: list[Edit]) -> None:
    a_lines, b_lines = a.splitlines(keepends=True), b.splitlines(keepends=True)
    if len(a_lines) + len(b_lines) > LINE_DIFF_LIMIT:
        edits.append((base, len(a), b))
        return
    a_offsets = _offsets(a_lines)
    b_offsets = _offsets(b_lines)
    for i1, i2, j1, j2 in _changed_spans(a_lines, b_lines):
        old_part = a[a_offsets[i1] : a_offsets[i2]]
        new_part = b[b_offsets[j1] : b_offsets[j2]]
        _diff(old_part, new_part, base + a_offsets[i1], edits, lines=False)


def _changed_spans(a: Sequence, b: Sequence) -> list[tuple[int, int, int, int]]:
    """Spans (a[i1:i2] becomes b[j1:j2]) outside the longest common subsequence of a and b
    (strings, or lists of lines). A deletion next to an insertion is one span."""
    spans: list[tuple[int, int, int, int]] = []
    for op in Indel.opcodes(a, b):
        if op.tag == "equal":
            continue
        if spans and spans[-1][1] == op.src_start and spans[-1][3] == op.dest_start:
            i1, _, j1, _ = spans[-1]
            spans[-1] = (i1, op.src_end, j1, op.dest_end)
        else:
            spans.append((op.src_start, op.src_end, op.dest_start, op.dest_end))
    return spans


def _offsets(lines: list[str]) -> list[int]:
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    return offsets


def apply(text: Text, old: str, edits: list[Edit]) -> None:
    """Apply edits computed against ``old`` (the text's current value) to a pycrdt Text.

    Call inside a transaction so all edits travel as one update.
    """
    # Byte offsets of each edit, computed in one forward pass; applied right to left so the
    # earlier offsets stay valid.
    byte_edits = []
    cursor_cp = cursor_b = 0
    for position, count, insert in edits:
        cursor_b += len(old[cursor_cp:position].encode("utf-8"))
        cursor_cp = position
        deleted = len(old[position : position + count].encode("utf-8"))
        byte_edits.append((cursor_b, deleted, insert))
    for offset, deleted, insert in reversed(byte_edits):
        if deleted:
            del text[offset : offset + deleted]
        if insert:
            text.insert(offset, insert)


def replace(text: Text, new: str) -> int:
    """Make the text equal ``new`` by its minimal diff; returns the number of edits."""
    old = str(text)
    edits = diff(old, new)
    apply(text, old, edits)
    return len(edits)


def insert(text: Text, position: int | None, content: str) -> None:
    """Insert at a position in code points (None or past the end: append)."""
    old = str(text)
    if position is None or position > len(old):
        position = len(old)
    if position < 0:
        raise ValueError(f"position must be 0 or more, got {position}")
    text.insert(len(old[:position].encode("utf-8")), content)
