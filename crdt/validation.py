"""Validation of Yjs v1 updates before pycrdt (yrs) sees them.

yrs decodes nested ``Any`` values and walks nested shared types by native recursion, keeps
clocks in 32 bits while lib0 varUints carry 53, allocates as much as a count announces before
reading what it counts, and reads strings without checking their UTF-8. Any of these lets one
update kill the process (a stack overflow, an abort on allocation) or corrupt a document, and
no exception can be caught for it. So every foreign update is read here first, completely,
and refused unless it stays within Limits:

- ``any_depth``: arrays and objects inside each other in one ``Any`` value (ContentAny, the
  options of a subdocument) or one JSON payload (embeds and formatting attributes);
- ``type_depth``: shared types inside each other (XML elements, maps, arrays, texts). This
  holds across updates, not only inside one: a DepthTracker per document knows how deep every
  live item sits, so an update that nests one more level under an existing type is refused;
- clocks: every struct ends below 2**32 (yrs wraps past it), as do the ids it refers to, the
  delete set's ranges and the clocks of state vectors;
- ``count``: every announced count (clients, structs, delete ranges, values, entries of an
  array or object) at most this, and never more than the bytes left could hold;
- ``string_bytes``: every string and byte array at most this long, and valid UTF-8;
- ``structs``: structs in one update applied to a live document (strict mode). yrs takes
  quadratic time on some shapes of many small structs (20,000 one-character structs, each
  after the previous: 0.35 s; 40,000: 1.4-2.4 s; 200,000: 200 s), all of it on the event
  loop. Real updates are far smaller: the whole 260k-edit automerge-paper document is 10,971
  structs. Stored notes are not held to it.

A refusal is an UpdateRefused (an InvalidUpdate) that names the limit and says whether the
update was too big (413 / 1009) or invalid (400 / 1007).

Two kinds of content are refused outright: ContentJSON (ref 2), a legacy encoding no current
Yjs writes, that yrs misreads (it reads one string more than announced, so what it decodes
would not be what was validated), and type refs past XmlText (6), which Yjs does not have.

Dependencies. yrs integrates an item whose clock lies past what the document has of its
client (instead of keeping it pending, as Yjs does): the client's clock jumps, and that
client's real edits are then dropped as duplicates. In ``strict`` mode (foreign updates
applied to a live document) an update must therefore continue each client's clock without a
gap, every item's origins and parent must be in the document or in the update, and so must
every item it deletes (a deletion of items yrs does not have waits in memory only, see
_Resolver.run). Stored notes are read in lenient mode: a gap or a missing dependency is
skipped over, not refused.
"""

from __future__ import annotations

import itertools
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from .lib0 import MAX_CLOCK, Reader

CLOCK_END = MAX_CLOCK  # a struct's clock + length, and every clock in a state vector, at most this
ID_CLOCK_END = MAX_CLOCK + 1  # clocks of the ids an item refers to: below this


class InvalidUpdate(ValueError):
    """Bytes that are not a Yjs v1 update, or an update the document refuses."""


class InvalidStateVector(ValueError):
    """Bytes that are not an encoded Yjs state vector."""


@dataclass(frozen=True, slots=True)
class Limits:
    any_depth: int = 100
    type_depth: int = 100
    count: int = 4 * 1024 * 1024
    string_bytes: int = 16 * 1024 * 1024
    structs: int = 20_000


DEFAULT_LIMITS = Limits()
_UNLIMITED = Limits(
    any_depth=2**62, type_depth=2**62, count=2**62, string_bytes=2**62, structs=2**62
)

# Names of the limits as the settings call them (server/settings.py), for messages and logs.
ANY_DEPTH = "max_any_depth"
TYPE_DEPTH = "max_type_depth"
COUNT = "max_update_entries"
STRING_BYTES = "max_update_string_bytes"
STRUCTS = "max_update_structs"
CLOCK = "clock"
STRUCTURE = "structure"
DEPENDENCY = "dependency"


class UpdateRefused(InvalidUpdate):
    """An update coscribe refuses before pycrdt reads it. ``limit`` names what it broke;
    ``too_big`` tells a size limit (413 / 1009) from an invalid update (400 / 1007)."""

    def __init__(self, message: str, limit: str, *, too_big: bool = False) -> None:
        super().__init__(message)
        self.limit = limit
        self.too_big = too_big


class _Malformed(Exception):
    pass


def _invalid(message: str, limit: str = STRUCTURE) -> UpdateRefused:
    return UpdateRefused(message, limit)


# --- reading ------------------------------------------------------------------------------------

# Per item: (client, clock, length, dependency kind, dependency client, dependency clock, type?)
ROOT, PARENT, ORIGIN, NONE = 0, 1, 2, 3  # NONE: a GC range, known ids with no parent
XML = -1  # details: a shared type that is an XML node (XmlElement, XmlHook, XmlText)
_SCALARS = frozenset((127, 126, 121, 120))
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


class _Read:
    """One pass over a v1 update: checks everything but the dependencies between items,
    and lists the items (and GC ranges) with what their parent depends on."""

    def __init__(self, update: bytes, limits: Limits, *, detail: bool = False) -> None:
        self.limits = limits
        self.r = Reader(update, _Malformed)
        self.items: list[tuple[int, int, int, int, int, int, bool]] = []
        # With ``detail``, per item also: (its root's name or None, keyed?, content ref, or
        # XML for a shared type that is an XML node), for crdt.document.root_types.
        self.details: list[tuple[str | None, bool, int | None]] | None = [] if detail else None
        self.type_ref = 0  # of the last shared type read
        self.skips: list[tuple[int, int, int]] = []
        # Right origins of items that also have a left one (which gives their parent).
        self.rights: list[tuple[int, int, int, int]] = []
        self.parent_ids = False  # any item naming a type's id as its parent
        self.types = False  # any item holding a shared type
        self.deleted: list[tuple[int, int, int]] = []  # the delete set: (client, clock, end)
        # (client, clock) of the second UTF-16 unit of every surrogate pair in this update's
        # strings, and every id where its items cut another in two (see DepthTracker; the
        # ends of the deleted ranges are cuts too).
        self.pairs: list[tuple[int, int]] = []
        self.cuts: list[tuple[int, int]] = []
        try:
            self._structs()
            self._delete_set()
        except _Malformed as exc:
            raise _invalid(f"malformed update: {exc}") from None

    def count(self, min_bytes: int, what: str) -> int:
        n = self.r.var_uint()
        if n > self.limits.count:
            raise UpdateRefused(
                f"{what}: {n} announced, more than {self.limits.count}", COUNT, too_big=True
            )
        left = len(self.r.data) - self.r.pos
        if n * min_bytes > left:
            raise _invalid(f"{what}: {n} announced, more than the {left} bytes left")
        return n

    def string(self) -> str:
        r = self.r
        n = r.var_uint()
        if n > self.limits.string_bytes:
            raise UpdateRefused(
                f"a string of {n} bytes, more than {self.limits.string_bytes}",
                STRING_BYTES,
                too_big=True,
            )
        if n > r.remaining:
            raise _Malformed(f"truncated string: {n} bytes announced, {r.remaining} left")
        start = r.pos
        r.pos += n
        try:
            return str(r.data[start : r.pos], "utf-8")
        except UnicodeDecodeError:
            raise _invalid("a string is not valid UTF-8") from None

    def bytes_(self) -> None:
        r = self.r
        n = r.var_uint()
        if n > self.limits.string_bytes:
            raise UpdateRefused(
                f"a byte array of {n} bytes, more than {self.limits.string_bytes}",
                STRING_BYTES,
                too_big=True,
            )
        r.skip(n)

    def _structs(self) -> None:
        r = self.r
        # Bound methods in locals: this loop runs once per struct of every update.
        var_uint, byte, append, cut = r.var_uint, r.byte, self.items.append, self.cuts.append
        for _ in range(self.count(3, "client sections")):
            n = self.count(2, "structs")
            client = var_uint()
            clock = var_uint()
            for _ in range(n):
                info = byte()
                if info == 0 or info == 10:  # GC, skip
                    length = var_uint()
                    if info == 0:
                        append((client, clock, length, NONE, 0, 0, False))
                        if self.details is not None:
                            self.details.append((None, False, None))
                    else:
                        self.skips.append((client, clock, length))
                else:
                    ref = info & 0x1F
                    root = None
                    if info & 0xC0:  # an origin: the parent is the origin's
                        kind, dep_client, dep_clock = ORIGIN, var_uint(), var_uint()
                        # Inserted after a left origin, before a right one: an item is cut
                        # just after the first, at the second.
                        cut((dep_client, dep_clock + 1 if info & 0x80 else dep_clock))
                        if info & 0xC0 == 0xC0:  # both: the left one gives the parent
                            right_client, right_clock = var_uint(), var_uint()
                            if right_clock >= ID_CLOCK_END:
                                raise _invalid(f"an id at clock {right_clock}, past 32 bits", CLOCK)
                            self.rights.append((client, clock, right_client, right_clock))
                            cut((right_client, right_clock))
                    else:
                        if var_uint() == 1:
                            root = self.string()
                            kind, dep_client, dep_clock = ROOT, 0, 0
                        else:
                            kind, dep_client, dep_clock = PARENT, var_uint(), var_uint()
                            self.parent_ids = True
                        if info & 0x20:
                            self.string()
                    if dep_clock >= ID_CLOCK_END:
                        raise _invalid(f"an id at clock {dep_clock}, past 32 bits", CLOCK)
                    length = self._content(ref, client, clock)
                    append((client, clock, length, kind, dep_client, dep_clock, ref == 7))
                    if self.details is not None:
                        keyed = kind != ORIGIN and bool(info & 0x20)
                        xml = ref == 7 and self.type_ref in (3, 5, 6)
                        self.details.append((root, keyed, XML if xml else ref))
                if length == 0:
                    raise _invalid("a struct of length 0")
                clock += length
                if clock > CLOCK_END:
                    raise _invalid(f"client {client}'s clock reaches {clock}, past 32 bits", CLOCK)

    def _content(self, ref: int, client: int, clock: int) -> int:
        """Read one item's content (the item at client:clock); return its length in clock
        units."""
        r = self.r
        if ref == 4:  # string: its length counts UTF-16 code units, as in Yjs
            text = self.string()
            if text.isascii():
                return len(text)
            length = len(text.encode("utf-16-le")) // 2
            if length != len(text):  # characters past U+FFFF: two units each
                # The k-th such character at index i starts at unit i + k.
                self.pairs.extend(
                    (client, clock + match.start() + k + 1)
                    for k, match in enumerate(_ASTRAL.finditer(text))
                )
            return length
        if ref == 8:  # any
            n = self.count(1, "values")
            for _ in range(n):
                self.any()
            return n
        if ref == 1:  # deleted
            return r.var_uint()
        if ref == 7:  # a shared type
            self.types = True
            self.type_ref = type_ref = r.byte()  # yrs reads a byte, Yjs a varUint: 0-6 agree
            if type_ref in (3, 5):  # XmlElement and XmlHook carry a name
                self.string()
            elif type_ref > 6:
                raise _invalid(f"unknown type ref {type_ref}")
            return 1
        if ref == 3:  # binary
            self.bytes_()
            return 1
        if ref == 5:  # embed: a JSON value
            self.json()
            return 1
        if ref == 6:  # format: key, JSON value
            self.string()
            self.json()
            return 1
        if ref == 9:  # subdocument: guid, options
            self.string()
            self.any()
            return 1
        if ref == 2:
            raise _invalid("JSON content (legacy, misread by yrs) is not accepted")
        raise _invalid(f"unknown content ref {ref}")

    def json(self) -> None:
        """A JSON text, parsed by yrs natively: bound its nesting."""
        text = self.string()
        limit = self.limits.any_depth
        if text.count("[") + text.count("{") <= limit:
            return  # cannot nest deeper than it has brackets
        depth = 0
        for match in _JSON_TOKEN.finditer(text):
            token = match.group()
            if token in "[{":
                depth += 1
                if depth > limit:
                    raise UpdateRefused(f"a JSON value nested more than {limit} deep", ANY_DEPTH)
            elif token in "]}":
                depth -= 1

    def any(self) -> None:
        """Skip one lib0 Any value, without recursion, bounding its nesting."""
        r = self.r
        limit = self.limits.any_depth
        stack: list[list[int]] = []  # per open array or object: [entries left, keyed]
        while True:
            tag = r.byte()
            if tag in _SCALARS:
                pass
            elif tag == 125:  # varInt
                r.skip_var_int()
            elif tag == 119:  # string
                self.string()
            elif tag in (123, 122):  # float64, bigint64
                r.skip(8)
            elif tag == 124:  # float32
                r.skip(4)
            elif tag == 116:  # Uint8Array
                self.bytes_()
            elif tag == 117 or tag == 118:  # array, object
                if len(stack) >= limit:
                    raise UpdateRefused(f"an Any value nested more than {limit} deep", ANY_DEPTH)
                keyed = tag == 118
                n = self.count(2 if keyed else 1, "entries")
                if n:
                    stack.append([n, keyed])
            else:
                raise _Malformed(f"unknown any tag {tag}")
            while stack:
                top = stack[-1]
                if top[0] == 0:
                    stack.pop()
                    continue
                top[0] -= 1
                if top[1]:
                    self.string()
                break
            else:
                return

    def _delete_set(self) -> None:
        r = self.r
        for _ in range(self.count(2, "delete set clients")):
            client = r.var_uint()
            for _ in range(self.count(2, "delete ranges")):
                clock = r.var_uint()
                end = clock + r.var_uint()
                self.deleted.append((client, clock, end))
                if end > CLOCK_END:
                    raise _invalid(f"a deletion reaches clock {end}, past 32 bits", CLOCK)


# --- depth across updates -------------------------------------------------------------------


@dataclass
class _Deep:
    """Clock ranges of one client whose items live inside nested types, with their depth
    (the nesting of the type they are in: 1 for a type held by a root). Sorted, disjoint."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)

    def depth(self, clock: int) -> int:
        at = bisect_right(self.starts, clock) - 1
        return self.depths[at] if at >= 0 and clock < self.ends[at] else 0

    def add(self, start: int, end: int, depth: int) -> None:
        at = bisect_right(self.starts, start)
        # Extend the previous range when it continues it at the same depth (typing inside a
        # nested paragraph adds one clock at a time).
        if (
            at
            and self.ends[at - 1] == start
            and self.depths[at - 1] == depth
            and (at == len(self.starts) or self.starts[at] >= end)
        ):
            self.ends[at - 1] = end
            return
        self.starts.insert(at, start)
        self.ends.insert(at, end)
        self.depths.insert(at, depth)


@dataclass
class Checked:
    """What an accepted update adds to a DepthTracker (see DepthTracker.commit)."""

    ends: dict[int, int]
    deep: list[tuple[int, int, int, int]]  # (client, start, end, depth)
    deletes: int = 0  # ranges in the update's delete set
    # Every struct continues its client exactly where the document ends, and nothing is
    # deleted: applied, the update is exactly what the document gains.
    fresh: bool = False
    pairs: Sequence[tuple[int, int]] = ()  # see _Read.pairs


def read_structs(update: bytes) -> _Read:
    """Every item of an update the document wrote itself, with details (see _Read), read
    without limits. UpdateRefused if malformed."""
    return _Read(bytes(update), _UNLIMITED, detail=True)


class DepthTracker:
    """How deep each item of one document sits among nested types, kept across updates.

    For every client, the clock below which the document has its items (as yrs's state
    vector), and the clock ranges of items that live inside a nested type, with that
    nesting. Items of a root's own children are not listed: a plain-text note's tracker
    holds one clock per client and nothing else. Build it with ``scan`` from a document's
    encoded state, then ``check`` each update before applying it and ``commit`` after.

    It also knows where the document's strings hold a character past U+FFFF (two UTF-16
    units, one clock each), to refuse an update that cuts one in two: a deletion, an origin
    or an overlap that ends between its units. yrs then keeps a text whose encoding does not
    match its clocks (a deleted half encodes one clock long or short), so the state it sends
    to a joining client and stores in a snapshot differs from the one it answers sync with,
    and peers diverge for good. Yjs replaces both halves with U+FFFD instead; editors never
    put a cursor there.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.ends: dict[int, int] = {}
        self.deep: dict[int, _Deep] = {}
        # Per client, the clock of the second unit of each of its surrogate pairs.
        self.pairs: dict[int, set[int]] = {}

    def __repr__(self) -> str:
        ranges = sum(len(d.starts) for d in self.deep.values())
        return f"<DepthTracker clients={len(self.ends)} deep_ranges={ranges}>"

    def scan(self, update: bytes, *, strict: bool = False) -> None:
        """Check and record a stored state or update (lenient by default)."""
        self.commit(self.check(update, strict=strict))

    def check(self, update: bytes, *, strict: bool = True) -> Checked:
        """Raise UpdateRefused unless ``update`` is within the limits for this document."""
        if not isinstance(update, bytes | bytearray | memoryview):
            raise UpdateRefused(f"an update is bytes, got {type(update).__name__}", STRUCTURE)
        read = _Read(bytes(update), self.limits)
        structs = len(read.items) + len(read.skips)
        if strict and structs > self.limits.structs:
            raise UpdateRefused(
                f"{structs} structs in one update, more than {self.limits.structs}",
                STRUCTS,
                too_big=True,
            )
        return _Resolver(self, read, strict, self.limits.type_depth).run()

    def record(self, update: bytes) -> None:
        """Record an update the document made itself (a server-side edit), without limits:
        it is already applied, and what pycrdt wrote it can read."""
        read = _Read(bytes(update), _UNLIMITED)
        self.commit(_Resolver(self, read, False, _UNLIMITED.type_depth).run())

    def commit(self, checked: Checked) -> None:
        for client, end in checked.ends.items():
            if end > self.ends.get(client, 0):
                self.ends[client] = end
        for client, start, end, depth in checked.deep:
            self.deep.setdefault(client, _Deep()).add(start, end, depth)
        for client, clock in checked.pairs:
            self.pairs.setdefault(client, set()).add(clock)

    def resync(self, state_vector: dict[int, int]) -> None:
        """Take the document's own clocks, after pycrdt refused an update half-way: what it
        did not integrate must not count as known (depths recorded stay: an overestimate)."""
        self.ends = dict(state_vector)

    def depth_of(self, client: int, clock: int) -> int:
        deep = self.deep.get(client)
        return deep.depth(clock) if deep is not None else 0


class _Resolver:
    """The depth of every item of one update, following parents and origins inside the
    update and into the tracker, without recursion."""

    def __init__(self, tracker: DepthTracker, read: _Read, strict: bool, limit: int) -> None:
        self.tracker = tracker
        self.read = read
        self.strict = strict
        self.limit = limit

    def run(self) -> Checked:
        tracker, items = self.tracker, self.read.items
        known = tracker.ends
        ends: dict[int, int] = {}
        fresh = not self.read.skips and not self.read.deleted
        pairs = self.read.pairs
        # Clocks each client continues from, checked in order (strict: no gaps).
        for item in items:
            client, clock, length = item[0], item[1], item[2]
            have = ends.get(client, known.get(client, 0))
            if clock != have:
                fresh = False
                if pairs and clock < have < clock + length:
                    self.read.cuts.append((client, have))  # yrs takes the part past have
            if clock > have:
                if self.strict:
                    raise _invalid(
                        f"client {client} continues at clock {clock}, but the document has "
                        f"its clocks only up to {have} (send the missing updates first)",
                        DEPENDENCY,
                    )
                continue  # a gap in stored data: yrs keeps it pending
            if clock + length > have:
                ends[client] = clock + length
        if self.strict and (self.read.cuts or self.read.deleted) and (pairs or tracker.pairs):
            self._whole_characters()
        if self.strict:
            for client, clock, dep_client, dep_clock in self.read.rights:
                if dep_clock >= ends.get(dep_client, known.get(dep_client, 0)):
                    self._missing(client, clock, dep_client, dep_clock)
            for client, clock, end in self.read.deleted:
                # yrs keeps such a deletion pending, in memory only: no transaction stores or
                # broadcasts it, nor does the doc's encoding carry it, yet it deletes the items
                # when they come. A client only deletes what it has, and its sync sends that.
                have = ends.get(client, known.get(client, 0))
                if end > have:
                    raise _invalid(
                        f"the update deletes {client}:{clock}..{end - 1}, but the document has "
                        f"that client's clocks only up to {have} (send the missing updates "
                        f"first)",
                        DEPENDENCY,
                    )
        deep: list[tuple[int, int, int, int]] = []
        if not self.read.parent_ids and not self.read.types and not tracker.deep:
            # Fast path (plain text, flat maps and arrays): everything sits in a root.
            if self.strict:
                for client, clock, _, kind, dep_client, dep_clock, _ in items:
                    if kind == ORIGIN and dep_clock >= ends.get(
                        dep_client, known.get(dep_client, 0)
                    ):
                        self._missing(client, clock, dep_client, dep_clock)
            return Checked(ends, deep, len(self.read.deleted), fresh, pairs)
        self.ends = ends
        self._index()
        for index, (client, clock, length, kind, *_rest) in enumerate(items):
            if kind == NONE:
                continue
            depth = self._depth(index)
            if depth is None or clock + length <= known.get(client, 0):
                continue  # unresolved (lenient), or already in the document
            start = max(clock, known.get(client, 0))
            if depth > 0:
                deep.append((client, start, clock + length, depth))
        return Checked(ends, deep, len(self.read.deleted), fresh, pairs)

    def _whole_characters(self) -> None:
        """Refuse an update that cuts a surrogate pair in two (see DepthTracker)."""
        known = self.tracker.pairs
        new = set(self.read.pairs)
        ends = ((client, at) for client, clock, end in self.read.deleted for at in (clock, end))
        for client, clock in itertools.chain(self.read.cuts, ends):
            if clock in known.get(client, ()) or (client, clock) in new:
                raise _invalid(
                    f"the update cuts the character at {client}:{clock - 1} in two (it is "
                    f"past U+FFFF, two UTF-16 units: edits must keep it whole)"
                )

    def _missing(self, client: int, clock: int, dep_client: int, dep_clock: int) -> None:
        raise _invalid(
            f"item {client}:{clock} depends on {dep_client}:{dep_clock}, which neither the "
            f"document nor the update has (send the missing updates first)",
            DEPENDENCY,
        )

    def _index(self) -> None:
        # Per client, the starts of its items in this update, for finding an id's item.
        self.starts: dict[int, list[int]] = {}
        self.indexes: dict[int, list[int]] = {}
        order = sorted(range(len(self.read.items)), key=lambda i: self.read.items[i][:2])
        for index in order:
            client, clock = self.read.items[index][:2]
            self.starts.setdefault(client, []).append(clock)
            self.indexes.setdefault(client, []).append(index)
        self.memo: dict[int, int | None] = {}

    def _find(self, client: int, clock: int) -> int | None:
        starts = self.starts.get(client)
        if not starts:
            return None
        at = bisect_right(starts, clock) - 1
        if at < 0:
            return None
        index = self.indexes[client][at]
        item = self.read.items[index]
        return index if clock < item[1] + item[2] else None

    def _depth(self, index: int) -> int | None:
        """The depth of the item at ``index`` (that of the type it lives in; 0 in a root),
        or None when it cannot be known (a dependency nobody has, a cycle)."""
        memo = self.memo
        if index in memo:
            return memo[index]
        items, known = self.read.items, self.tracker.ends
        chain: list[tuple[int, int]] = []  # (index, levels its dependency adds)
        current: int | None = index
        result: int | None = None
        in_chain: set[int] = set()
        while True:
            client, clock, _, kind, dep_client, dep_clock, _ = items[current]
            if kind in (ROOT, NONE):
                result = 0
                break
            step = 1 if kind == PARENT else 0
            chain.append((current, step))
            in_chain.add(current)
            # The document's own items come first: yrs ignores what it already has.
            if dep_clock < known.get(dep_client, 0):
                result = self.tracker.depth_of(dep_client, dep_clock)
                break
            found = self._find(dep_client, dep_clock)
            if found is None or found in in_chain:
                if self.strict:
                    self._missing(client, clock, dep_client, dep_clock)
                result = None
                break
            if found in memo:
                result = memo[found]
                break
            current = found
        for link, step in reversed(chain):
            if result is not None:
                result += step
                client, clock, _, _, _, _, is_type = items[link]
                if result + is_type > self.limit:
                    raise UpdateRefused(
                        f"item {client}:{clock} would nest shared types "
                        f"{result + is_type} deep, more than {self.limit}",
                        TYPE_DEPTH,
                    )
            memo[link] = result
        return memo[index] if chain else result
