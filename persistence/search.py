"""Full-text search over notes' titles and bodies: one API over SQLite FTS5 and PostgreSQL.

Both dialects index the same thing: words normalized here, in Python (Unicode NFKD with the
combining marks removed, case-folded, every CJK character a word of its own, everything that
is not a letter or a digit a space). So "Café" finds "cafe", "東京" finds the phrase 東 京 in
a sentence with no spaces, and the database's own tokenizer ('simple' on PostgreSQL, unicode61
on SQLite) only ever sees space-separated words: both give the same hits. There is no stemming
(notes are in many languages): a word matches a word.

A query is words and "quoted phrases", all of which must match. Nothing a user types reaches
the FTS5 or tsquery syntax as syntax: every word is quoted after normalization, and only
letters and digits survive normalization, so operators, quotes and parentheses are just
separators. Ranking is BM25 on SQLite and ts_rank on PostgreSQL, title words weighing 10x
body words on both; snippets and their highlights are made here, the same way for both.

Every function takes the caller's Connection and never commits.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from crdt import document
from crdt.validation import DEFAULT_LIMITS, Limits

from . import limits
from .checks import as_now, check_id
from .errors import InvalidError
from .paging import DEFAULT_LIMIT, Page, Row, check_limit
from .schema import note_search, notes

MAX_QUERY_CHARS = 1000
MAX_QUERY_WORDS = 32
# Words of a body past this many characters are not indexed: bounds the index (a tsvector
# holds at most 1 MB) and the time one edit of a huge note costs.
DEFAULT_MAX_INDEXED_CHARS = 200_000
SNIPPET_CHARS = 160
# A snippet is looked for in this much of the body; past it the snippet is the body's start.
SNIPPET_SCAN_CHARS = 100_000

# Ideographs and kana: written without spaces, so each character is indexed as a word and a
# run of them is searched as a phrase. (Hangul is written with spaces and stays as words.)
_CJK = (
    "\u2e80-\u2fdf\u3005\u3007\u3021-\u3029\u3038-\u303b\u3040-\u30ff\u3190-\u319f"
    "\u31c0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0002fa1f\U00030000-\U0003134f"
)
# A word: one CJK character, or a run of letters and digits that are not CJK. Written as a
# negated class, not a lookahead per character: the regex engine then scans a run in C.
_WORDS = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")
# Words in unnormalized text, for snippets: combining marks stay inside the word they mark.
_RAW_WORDS = re.compile(rf"[{_CJK}]|(?:[^\W_{_CJK}]|[\u0300-\u036f\u1ab0-\u1aff])+")
# ASCII text (most notes, once folded): letters and digits stay, every other byte becomes a
# space, and split() does the rest, 8x faster than the regex on a 5 kB body.
_ASCII_SEPARATORS = bytes(c if chr(c).isalnum() else 0x20 for c in range(128)) + b" " * 128
_PHRASES = re.compile(r'"([^"]*)"?|([^\s"]+)')
_combining: dict[int, None] | None = None


def _marks() -> dict[int, None]:
    """str.translate table dropping every combining mark (built once, on first use)."""
    global _combining
    if _combining is None:
        _combining = {cp: None for cp in range(0x300, 0x110000) if unicodedata.combining(chr(cp))}
    return _combining


def fold(text: str) -> str:
    """Compatibility-decomposed, without combining marks, case-folded."""
    if text.isascii():
        return text.lower()  # the same, for ASCII, without a pass per character in Python
    return unicodedata.normalize("NFKD", text).translate(_marks()).casefold()


def words(text: str) -> list[str]:
    """The normalized words of a text, as both dialects index them."""
    folded = fold(text)
    if folded.isascii():
        return folded.encode("ascii").translate(_ASCII_SEPARATORS).decode("ascii").split()
    return _WORDS.findall(folded)


def terms(text: str, max_chars: int = DEFAULT_MAX_INDEXED_CHARS) -> str:
    """What is indexed for a text: its first ``max_chars`` characters' words, space-separated."""
    return " ".join(words(text[:max_chars]))


# --- queries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A parsed query: phrases (lists of normalized words), all of which must match."""

    text: str
    phrases: tuple[tuple[str, ...], ...]

    @property
    def words(self) -> frozenset[str]:
        return frozenset(word for phrase in self.phrases for word in phrase)

    def fts5(self) -> str:
        # Words hold letters and digits only, but quote-doubling keeps that from mattering.
        quoted = ('"' + " ".join(phrase).replace('"', '""') + '"' for phrase in self.phrases)
        return " AND ".join(quoted)

    def tsquery(self) -> str:
        def lexeme(word: str) -> str:
            return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"

        return " & ".join(
            "(" + " <-> ".join(lexeme(word) for word in phrase) + ")" for phrase in self.phrases
        )


def parse_query(text: Any) -> Query:
    """InvalidError for an empty or too long query, or one with no word to search for."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidError("the query is empty: pass q with a word or a quoted phrase")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidError(
            f"the query is {len(text)} characters long, over the limit of {MAX_QUERY_CHARS}"
        )
    phrases = []
    for quoted, bare in _PHRASES.findall(text):
        found = words(quoted or bare)
        if not found:
            continue
        if bare:
            # Outside quotes, "rock-n-roll" or "a.b" are separate words, not a phrase.
            phrases.extend((word,) for word in found)
        else:
            phrases.append(tuple(found))
    if not phrases:
        raise InvalidError("the query has no words to search for (only punctuation or quotes)")
    count = sum(len(phrase) for phrase in phrases)
    if count > MAX_QUERY_WORDS:
        raise InvalidError(f"the query has {count} words, over the limit of {MAX_QUERY_WORDS}")
    return Query(text, tuple(dict.fromkeys(phrases)))


# --- the index ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Indexed:
    """What index_note did: the body indexed before (None: the note was not indexed yet)."""

    note_id: str
    workspace_id: str
    version: int
    previous: str | None
    changed: bool  # the body differs from what was indexed before
    deleted: bool
    previous_version: int | None = None  # the version indexed before


# Built once: the indexer runs these for every edited note every couple of seconds. Notes are
# read and written many at a time: SQLAlchemy's overhead per statement (about 0.1 ms) was most
# of the cost of indexing a note when each took three statements.
_NOTE_ROWS = sa.select(
    notes.c.id, notes.c.workspace_id, notes.c.title, notes.c.last_seq, notes.c.deleted_at
).where(notes.c.id.in_(sa.bindparam("note_ids", expanding=True)))
_INDEX_ROWS = (
    sa.select(note_search.c.id, note_search.c.note_id, note_search.c.body, note_search.c.version)
    .where(note_search.c.note_id.in_(sa.bindparam("note_ids", expanding=True)))
    .order_by(note_search.c.note_id)  # two processes lock a batch's rows in the same order
    .with_for_update()
)
# Columns are set from the parameters' keys (SQLAlchemy compiles each set of keys once).
_INSERT_ROW = sa.insert(note_search)
_UPDATE_ROW = sa.update(note_search).where(note_search.c.id == sa.bindparam("row_id"))
# Ids per statement: far below SQLite's 32,766 bound parameters.
_CHUNK = 500


def index_note(
    conn: sa.Connection,
    note_id: str,
    body: str,
    *,
    max_chars: int = DEFAULT_MAX_INDEXED_CHARS,
    version: int | None = None,
    now: datetime | None = None,
) -> Indexed | None:
    """Index a note's body (and its current title); None if the note does not exist.

    ``version`` defaults to the note's last_seq as this transaction sees it. The row is read
    FOR UPDATE: two processes indexing one note take turns, and the second sees the first's
    body as the previous one.
    """
    return index_notes(conn, [(note_id, body, version)], max_chars=max_chars, now=now)[0]


def index_notes(
    conn: sa.Connection,
    bodies: Sequence[tuple[str, str, int | None]],
    *,
    max_chars: int = DEFAULT_MAX_INDEXED_CHARS,
    now: datetime | None = None,
) -> list[Indexed | None]:
    """index_note for each (note id, body, version), each note at most once, in a few
    statements whatever their number; the results in the same order."""
    ids = [note_id for note_id, _, _ in bodies]
    for note_id in ids:
        check_id("note id", note_id)
    if len(set(ids)) != len(ids):
        raise InvalidError("a note is indexed once per call")
    found: dict[str, Any] = {}
    rows: dict[str, Any] = {}
    for at in range(0, len(ids), _CHUNK):
        chunk = ids[at : at + _CHUNK]
        found.update((row.id, row) for row in conn.execute(_NOTE_ROWS, {"note_ids": chunk}))
        existing = sorted(note_id for note_id in chunk if note_id in found)
        if existing:
            for row in conn.execute(_INDEX_ROWS, {"note_ids": existing}):
                rows[row.note_id] = row
    indexed_at = as_now(now)
    inserts, rewrites, moves = [], [], []
    results: list[Indexed | None] = []
    for note_id, body, version in bodies:
        note = found.get(note_id)
        if note is None:
            results.append(None)
            continue
        version = note.last_seq if version is None else version
        row = rows.get(note_id)
        previous = previous_version = None
        if row is not None:
            previous, previous_version = row.body, row.version
        if row is not None and previous == body:
            # Only the version moves: the FTS triggers fire on the terms columns alone.
            moves.append({"row_id": row.id, "version": version, "indexed_at": indexed_at})
        else:
            values = {
                "title_terms": terms(note.title, max_chars),
                "body_terms": terms(body, max_chars),
                "body": body,
                "version": version,
                "indexed_at": indexed_at,
            }
            if row is None:
                inserts.append({"note_id": note_id, **values})
            else:
                rewrites.append({"row_id": row.id, **values})
        results.append(
            Indexed(
                note_id,
                note.workspace_id,
                version,
                previous,
                previous != body,
                note.deleted_at is not None,
                previous_version,
            )
        )
    # One executemany per shape of row: every parameter set of one must have the same keys.
    if inserts:
        conn.execute(_INSERT_ROW, inserts)
    if rewrites:
        conn.execute(_UPDATE_ROW, rewrites)
    if moves:
        conn.execute(_UPDATE_ROW, moves)
    return results


def retitle(
    conn: sa.Connection, note_id: str, title: str, max_chars: int = DEFAULT_MAX_INDEXED_CHARS
) -> None:
    """A note was renamed: its indexed title follows at once (a note not indexed yet gets its
    title when its body is)."""
    conn.execute(
        sa.update(note_search)
        .where(note_search.c.note_id == note_id)
        .values(title_terms=terms(title, max_chars))
    )


def stale_notes(conn: sa.Connection, limit: int | None = 100) -> list[str]:
    """Notes (not deleted) whose stored log is ahead of their index entry, or that have none:
    edits stored by another process, a crash before indexing, an import, a restore."""
    query = (
        sa.select(notes.c.id)
        .select_from(notes.outerjoin(note_search, note_search.c.note_id == notes.c.id))
        .where(
            notes.c.deleted_at.is_(None),
            sa.or_(note_search.c.id.is_(None), note_search.c.version < notes.c.last_seq),
        )
        .order_by(notes.c.updated_at, notes.c.id)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def reindex_note(
    conn: sa.Connection,
    note_id: str,
    *,
    crdt_limits: Limits = DEFAULT_LIMITS,
    max_chars: int = DEFAULT_MAX_INDEXED_CHARS,
) -> Indexed | None:
    """Index a note from storage (its snapshot and log) in this transaction."""
    from .update_log import load_doc

    row = conn.execute(
        sa.select(notes.c.last_seq).where(notes.c.id == note_id, notes.c.deleted_at.is_(None))
    ).first()
    if row is None:
        return None  # gone or deleted: a deleted note is never found anyway
    doc = load_doc(conn, note_id, crdt_limits)
    return index_note(
        conn, note_id, document.body_text(doc), max_chars=max_chars, version=row.last_seq
    )


def _encode_cursor(score: float, note_id: str) -> str:
    raw = json.dumps([score, note_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: Any) -> tuple[float, str]:
    invalid = InvalidError("invalid cursor: pass back a next_cursor unchanged")
    if not isinstance(cursor, str) or len(cursor) > limits.CURSOR_CHARS:
        raise invalid
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise invalid from None
    if (
        not isinstance(raw, list)
        or len(raw) != 2
        or not isinstance(raw[0], int | float)
        or isinstance(raw[0], bool)
        or not math.isfinite(raw[0])
        or not isinstance(raw[1], str)
        or len(raw[1]) > limits.ID_CHARS
    ):
        raise invalid
    return float(raw[0]), raw[1]


_SQLITE_HITS = """
WITH hits AS MATERIALIZED (
    SELECT note_fts.rowid AS search_id, -bm25(note_fts, 10.0, 1.0) AS score
    FROM note_fts WHERE note_fts MATCH :match
)
SELECT n.id AS note_id, n.workspace_id, n.title, n.updated_at, hits.score AS score
FROM hits JOIN note_search s ON s.id = hits.search_id JOIN notes n ON n.id = s.note_id
WHERE n.deleted_at IS NULL {where}
ORDER BY score DESC, n.id LIMIT :limit
"""
_POSTGRES_HITS = """
WITH hits AS MATERIALIZED (
    SELECT n.id AS note_id, n.workspace_id, n.title, n.updated_at,
           CAST(ts_rank('{{0.1, 0.1, 0.1, 1.0}}', s.document, q.query, 1)
                AS double precision) AS score
    FROM note_search s JOIN notes n ON n.id = s.note_id,
         to_tsquery('simple', :match) AS q(query)
    WHERE s.document @@ q.query AND n.deleted_at IS NULL {where}
)
SELECT * FROM hits {after} ORDER BY score DESC, note_id LIMIT :limit
"""


def search(
    conn: sa.Connection,
    query: Query | str,
    *,
    workspace_ids: list[str] | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page:
    """Notes matching ``query`` in these workspaces (None: every one), best first: each with
    note_id, workspace_id, title, updated_at, score, and a snippet with its highlights."""
    if not isinstance(query, Query):
        query = parse_query(query)
    limit = check_limit(limit)
    params: dict[str, Any] = {"limit": limit + 1}
    binds = []
    where = ""
    if workspace_ids is not None:
        if not workspace_ids:
            return Page([], None)
        where += " AND n.workspace_id IN :workspaces"
        params["workspaces"] = list(workspace_ids)
        binds.append(sa.bindparam("workspaces", expanding=True))
    after = "({score} < :after_score OR ({score} = :after_score AND {id} > :after_id))"
    if cursor is not None:
        params["after_score"], params["after_id"] = _decode_cursor(cursor)
    if conn.dialect.name == "postgresql":
        params["match"] = query.tsquery()
        keyset = "WHERE " + after.format(score="score", id="note_id") if cursor else ""
        sql = _POSTGRES_HITS.format(where=where, after=keyset)
    else:
        params["match"] = query.fts5()
        if cursor is not None:
            where += " AND " + after.format(score="hits.score", id="n.id")
        sql = _SQLITE_HITS.format(where=where)
    statement = sa.text(sql).bindparams(*binds)
    items = [dict(row) for row in conn.execute(statement, params).mappings()]
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        next_cursor = _encode_cursor(items[-1]["score"], items[-1]["note_id"])
    bodies = dict(
        conn.execute(
            sa.select(
                note_search.c.note_id, sa.func.substr(note_search.c.body, 1, SNIPPET_SCAN_CHARS)
            ).where(note_search.c.note_id.in_([item["note_id"] for item in items]))
        ).all()
    )
    for item in items:
        if isinstance(item["updated_at"], str):  # SQLite through text(): no column type
            item["updated_at"] = notes.c.updated_at.type.process_result_value(
                datetime.fromisoformat(item["updated_at"]), conn.dialect
            )
        elif item["updated_at"] is not None:
            item["updated_at"] = notes.c.updated_at.type.process_result_value(
                item["updated_at"], conn.dialect
            )
        item.update(snippet(bodies.get(item["note_id"]) or "", query.words))
        item["title_highlights"] = _highlights(item["title"], query.words)
    return Page(items, next_cursor)


# --- snippets -------------------------------------------------------------------------------------


def _highlights(text: str, wanted: frozenset[str], window: int | None = None) -> list[list[int]]:
    """[start, length] (code points) of every word of ``text`` that is one of ``wanted``;
    with ``window``, only those up to ``window`` characters after the first one (a snippet
    needs no more, and a long body is not scanned to its end)."""
    found: list[list[int]] = []
    end = None
    for match in _RAW_WORDS.finditer(text):
        if end is not None and match.start() >= end:
            break
        raw = match.group()
        # Most words are ASCII: lower() is what folding them comes to, at a fraction of the cost.
        key = raw.lower() if raw.isascii() else "".join(words(raw))
        if key in wanted:
            found.append([match.start(), match.end() - match.start()])
            if window is not None and end is None:
                end = match.start() + window
    return found


def snippet(body: str, wanted: frozenset[str], width: int = SNIPPET_CHARS) -> Row:
    """A window of the body around its first match: ``snippet`` (plain text),
    ``highlights`` ([start, length] in code points of the snippet) and ``snippet_html``
    (escaped, matches in <mark>)."""
    scan = body[:SNIPPET_SCAN_CHARS]
    hits = _highlights(scan, wanted, width)
    if hits:
        first = hits[0][0]
        start = max(0, first - width // 3)
        # Start at a word boundary where one is near (before ``start``, so that the words
        # leading up to the match stay in the snippet).
        space = scan.rfind(" ", max(0, start - 20), start)
        if space != -1 and start > 0:
            start = space + 1
    else:
        start = 0
    end = min(len(scan), start + width)
    text = scan[start:end]
    marks = [[s - start, n] for s, n in hits if s >= start and s + n <= end]
    parts, at = [], 0
    for s, n in marks:
        parts.append(html.escape(text[at:s]))
        parts.append(f"<mark>{html.escape(text[s : s + n])}</mark>")
        at = s + n
    parts.append(html.escape(text[at:]))
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(body) else ""
    return {
        "snippet": text,
        "highlights": marks,
        "snippet_html": prefix + "".join(parts) + suffix,
    }
