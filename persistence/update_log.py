"""A note's durable content: an append-only update log plus snapshots (DESIGN section 3).

Every function takes the caller's Connection and never commits: the caller owns the
transaction. Input is checked before any SQL runs, and the driver errors a race can still
cause come back as StoreErrors.

Invariants the concurrency story rests on:

* Seqs are allocated only by append, with ``UPDATE notes SET last_seq = last_seq + n``
  (a row lock held to commit). Appends of one note therefore commit in seq order, so what a
  reader sees of a note's log is always a prefix of it, and a seq is never reused.
* A snapshot with ``through_seq = S`` holds every update with ``seq <= S``. Load reads the
  newest one (highest through_seq, then newest id) and the updates after it; update rows at
  or below that through_seq are never read again. Whoever prunes snapshots must keep the
  newest one of each note.
* Reading a base snapshot and the updates after it is one SQL statement: under PostgreSQL's
  READ COMMITTED two statements could straddle a compaction's commit and miss its rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pycrdt
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import SQLAlchemyError

from crdt import document
from crdt.validation import DEFAULT_LIMITS

from .checks import as_now
from .errors import ConflictError, InvalidError, NotFoundError, StoreError
from .locks import lock_note
from .notes import check_note_id, find_note, get_note
from .paging import Row
from .schema import note_snapshots, note_updates

MAX_UPDATE_BYTES = 16 * 1024 * 1024
MAX_SEQ = 2**63 - 1


@dataclass(frozen=True)
class StoredNote:
    """What load reads: the newest snapshot (if any) and every update after it, by seq."""

    note_id: str
    workspace_id: str
    state: bytes | None
    through_seq: int
    updates: list[tuple[int, bytes]]
    last_seq: int  # the highest seq allocated so far (at least the last one in ``updates``)


def _update_bytes(value: Any, index: int) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidError(f"update {index}: expected bytes, got {type(value).__name__}")
    data = bytes(value)
    if not data:
        raise InvalidError(f"update {index}: empty")
    if len(data) > MAX_UPDATE_BYTES:
        raise InvalidError(
            f"update {index}: {len(data)} bytes, larger than the limit of {MAX_UPDATE_BYTES}"
        )
    return data


def check_seq(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise InvalidError(f"invalid {what}: expected an integer >= 0, got {value!r}")
    return value


def log_sizes(
    conn: sa.Connection, *, note_ids: Sequence[str] | None = None, min_updates: int = 1
) -> list[Row]:
    """Notes whose update log holds at least ``min_updates`` rows: ``{note_id, rows, bytes}``,
    most rows first. These are what compaction would fold into a snapshot."""
    query = (
        sa.select(
            note_updates.c.note_id,
            sa.func.count().label("rows"),
            sa.func.sum(sa.func.length(note_updates.c.update)).label("bytes"),
        )
        .group_by(note_updates.c.note_id)
        .having(sa.func.count() >= max(int(min_updates), 1))
        .order_by(sa.func.count().desc(), note_updates.c.note_id)
    )
    if note_ids is not None:
        query = query.where(note_updates.c.note_id.in_([check_note_id(n) for n in note_ids]))
    return [
        {"note_id": row.note_id, "rows": int(row.rows), "bytes": int(row.bytes or 0)}
        for row in conn.execute(query)
    ]


@dataclass(frozen=True)
class Appended:
    """What append stored: each note's new seqs, and the notes it could not store."""

    seqs: dict[str, list[int]]  # consecutive and increasing, per note appended
    failures: dict[str, Exception]  # StoreError, or the driver's error for that note alone
    # Why the batch as a whole failed and was written note by note (None: it did not).
    batch_error: Exception | None = None


def append(
    conn: sa.Connection, batch: Mapping[str, Sequence[bytes]], *, now: datetime | None = None
) -> Appended:
    """Append each note's updates in order: group commit for one note or many.

    The whole batch is one counter UPDATE and one INSERT, in a savepoint. A note that cannot
    be appended (unknown or soft-deleted: NotFoundError; bad updates: InvalidError) is
    reported and nothing is written for it. If the batch's statements fail as a whole, the
    savepoint is undone and the notes are written again one by one, each in a savepoint of
    its own, so that one bad note cannot keep the others from being stored. A failure never
    leaves rows or a bumped counter behind, even if the caller goes on with its transaction.

    The bytes are stored as given: callers store the update their Doc produced (see
    crdt.document.validate_update for foreign bytes).
    """
    now = as_now(now)
    failures: dict[str, Exception] = {}
    payloads: dict[str, list[bytes]] = {}
    for note_id, updates in batch.items():
        try:
            check_note_id(note_id)
            if isinstance(updates, bytes | bytearray | memoryview | str):
                raise InvalidError("updates: expected a sequence of updates, got a single value")
            payloads[note_id] = [_update_bytes(u, i) for i, u in enumerate(updates)]
        except InvalidError as exc:
            failures[note_id] = exc
    seqs: dict[str, list[int]] = {}
    for note_id in [n for n, p in payloads.items() if not p]:
        del payloads[note_id]  # nothing to store, but an unknown note is still an error
        if find_note(conn, note_id) is None:
            failures[note_id] = NotFoundError(f"note {note_id!r} not found")
        else:
            seqs[note_id] = []
    if not payloads:
        return Appended(seqs, failures)
    try:
        with conn.begin_nested():
            seqs.update(_append_rows(conn, payloads, failures, now))
        return Appended(seqs, failures)
    except (SQLAlchemyError, StoreError) as exc:
        if len(payloads) == 1:
            failures.update(dict.fromkeys(payloads, exc))
            return Appended(seqs, failures)
        batch_error = exc
    for note_id, updates in payloads.items():
        try:
            with conn.begin_nested():
                seqs.update(_append_rows(conn, {note_id: updates}, failures, now))
        except (SQLAlchemyError, StoreError) as exc:
            failures[note_id] = exc
    return Appended(seqs, failures, batch_error)


def _append_rows(
    conn: sa.Connection,
    payloads: Mapping[str, list[bytes]],
    failures: dict[str, Exception],
    now: datetime,
) -> dict[str, list[int]]:
    """One counter UPDATE and one INSERT (executemany) for every note in ``payloads`` (none
    empty), as driver SQL made once per dialect (see _AppendSql): storing a batch builds and
    compiles nothing."""
    sql = _append_sql(conn.dialect)
    counts = {note_id: len(p) for note_id, p in payloads.items()}
    when = sql.created_at(now)
    try:
        # Row locks on every note, held until the caller commits: appenders of one note
        # queue up behind them, so seqs commit in order (see the module docstring).
        allocated = dict(
            conn.exec_driver_sql(sql.allocate, sql.allocate_params(counts, when)).all()
        )
        seqs, rows = {}, []
        for note_id, count in counts.items():
            last = allocated.get(note_id)
            if last is None:
                failures[note_id] = NotFoundError(f"note {note_id!r} not found")
                continue
            first = last - count + 1
            seqs[note_id] = list(range(first, last + 1))
            rows += [
                sql.row(note_id, first + offset, payload, when)
                for offset, payload in enumerate(payloads[note_id])
            ]
        if rows:
            conn.exec_driver_sql(sql.insert, rows)
    except sa_exc.IntegrityError:
        # Only rows written behind append's back can clash with an allocated seq.
        named = ", ".join(repr(note_id) for note_id in counts)
        raise ConflictError(f"note {named}: allocated seqs are already taken") from None
    return seqs


@dataclass(frozen=True)
class _AppendSql:
    """append's two statements in the driver's own SQL and parameter style, made once per
    dialect. Each takes any number of notes with the same text, so nothing is built or
    compiled per batch (the group commit runs every few milliseconds).

    The counter UPDATE takes each note row's lock. On PostgreSQL an UPDATE that changes no
    key column takes FOR NO KEY UPDATE, not FOR UPDATE: inserts of rows that reference the
    note (its snapshots, a version) take FOR KEY SHARE and are not blocked by it."""

    allocate: str
    allocate_params: Callable[[dict[str, int], Any], Any]
    insert: str
    row: Callable[[str, int, bytes, Any], Any]
    created_at: Callable[[datetime], Any]


_APPEND_SQL: dict[tuple[str, str], _AppendSql] = {}


def _append_sql(dialect: sa.Dialect) -> _AppendSql:
    key = (dialect.name, dialect.paramstyle)
    sql = _APPEND_SQL.get(key)
    if sql is None:
        sql = _APPEND_SQL[key] = _make_append_sql(dialect)
    return sql


def _make_append_sql(dialect: sa.Dialect) -> _AppendSql:
    columns = ["note_id", "seq", "update", "created_at"]
    compiled = sa.insert(note_updates).compile(dialect=dialect, column_keys=columns)
    # The same conversion SQLAlchemy applies to a bound datetime (UtcDateTime, then the
    # dialect's own: SQLite stores text), done once per batch. The dialect's type, not the
    # column's: that one leaves SQLite a datetime for the sqlite3 module's default adapter,
    # which is deprecated and writes another text when the microseconds are 0.
    created_at = note_updates.c.created_at.type.dialect_impl(dialect)
    convert = created_at.bind_processor(dialect) or (lambda value: value)
    if dialect.name == "postgresql" and dialect.paramstyle == "pyformat":
        return _AppendSql(
            allocate=(
                "UPDATE notes SET last_seq = notes.last_seq + batch.n, updated_at = %(now)s "
                "FROM unnest(%(ids)s::text[], %(counts)s::bigint[]) AS batch(id, n) "
                "WHERE notes.id = batch.id AND notes.deleted_at IS NULL "
                "RETURNING notes.id, notes.last_seq"
            ),
            allocate_params=lambda counts, now: {
                "ids": list(counts),
                "counts": list(counts.values()),
                "now": now,
            },
            insert=compiled.string,
            row=lambda note_id, seq, update, now: {
                "note_id": note_id,
                "seq": seq,
                "update": update,
                "created_at": now,
            },
            created_at=convert,
        )
    if dialect.name == "sqlite" and dialect.paramstyle == "qmark":
        order = compiled.positiontup or []
        if order != columns:
            raise RuntimeError(f"unexpected parameter order for note_updates: {order}")
        return _AppendSql(
            allocate=(
                "UPDATE notes SET last_seq = last_seq + "
                "(SELECT batch.value FROM json_each(?) AS batch WHERE batch.key = notes.id), "
                "updated_at = ? "
                "WHERE id IN (SELECT key FROM json_each(?)) AND deleted_at IS NULL "
                "RETURNING id, last_seq"
            ),
            allocate_params=lambda counts, now: (json.dumps(counts), now, json.dumps(counts)),
            insert=compiled.string,
            row=lambda note_id, seq, update, now: (note_id, seq, update, now),
            created_at=convert,
        )
    raise RuntimeError(f"no append statements for {dialect.name} ({dialect.paramstyle})")


def append_updates(
    conn: sa.Connection, note_id: str, updates: Sequence[bytes], *, now: datetime | None = None
) -> list[int]:
    """Append one note's updates (append for a batch of one); returns their seqs.

    NotFoundError for an unknown or soft-deleted note; InvalidError for an empty or oversize
    update (nothing is written then).
    """
    result = append(conn, {check_note_id(note_id): updates}, now=now)
    if note_id in result.failures:
        raise result.failures[note_id]
    return result.seqs[note_id]


def append_update(
    conn: sa.Connection, note_id: str, update: bytes, *, now: datetime | None = None
) -> int:
    """Append one update; returns its seq."""
    return append_updates(conn, note_id, [update], now=now)[0]


def read_log(
    conn: sa.Connection, note_id: str, max_seq: int | None = None
) -> tuple[Row | None, list[tuple[int, bytes]]]:
    """The newest snapshot and the updates after it (up to max_seq), in ONE statement.

    One statement sees one consistent database state on PostgreSQL too; reading the snapshot
    and then the updates could straddle a compaction's commit and miss the rows it merged.
    """
    base = newest_snapshot(
        note_id,
        note_snapshots.c.id,
        note_snapshots.c.through_seq,
        note_snapshots.c.state,
        note_snapshots.c.state_vector,
    ).cte("base")
    through = sa.func.coalesce(sa.select(base.c.through_seq).scalar_subquery(), 0)
    updates = sa.select(
        sa.literal(1).label("part"),
        sa.cast(sa.null(), sa.BigInteger()).label("snapshot_id"),
        note_updates.c.seq.label("seq"),
        note_updates.c.update.label("data"),
        sa.cast(sa.null(), sa.LargeBinary()).label("state_vector"),
    ).where(note_updates.c.note_id == note_id, note_updates.c.seq > through)
    if max_seq is not None:
        updates = updates.where(note_updates.c.seq <= max_seq)
    query = sa.union_all(
        sa.select(
            sa.literal(0).label("part"),
            base.c.id.label("snapshot_id"),
            base.c.through_seq.label("seq"),
            base.c.state.label("data"),
            base.c.state_vector.label("state_vector"),
        ),
        updates,
    ).order_by(sa.literal_column("part"), sa.literal_column("seq"))
    snapshot: Row | None = None
    log: list[tuple[int, bytes]] = []
    for part, snapshot_id, seq, data, vector in conn.execute(query):
        if part == 0:
            snapshot = {
                "id": snapshot_id,
                "through_seq": seq,
                "state": bytes(data),
                "state_vector": bytes(vector),
            }
        else:
            log.append((seq, bytes(data)))
    return snapshot, log


def load_note(conn: sa.Connection, note_id: str, include_deleted: bool = False) -> StoredNote:
    """The newest snapshot plus every update after it; NotFoundError for an unknown note."""
    note = get_note(conn, note_id, include_deleted)
    snapshot, log = read_log(conn, note_id)
    return StoredNote(
        note_id=note_id,
        workspace_id=note["workspace_id"],
        state=None if snapshot is None else snapshot["state"],
        through_seq=0 if snapshot is None else snapshot["through_seq"],
        updates=log,
        # last_seq was read first; appends committed since may already be in the log.
        last_seq=max(note["last_seq"], log[-1][0] if log else 0),
    )


def load_doc(
    conn: sa.Connection, note_id: str, limits: document.Limits = DEFAULT_LIMITS
) -> pycrdt.Doc:
    """The note as a Doc (crdt.document.InvalidUpdate if stored bytes do not apply, and
    UpdateRefused, before pycrdt reads anything, if they are past ``limits``)."""
    stored = load_note(conn, note_id)
    return document.load(stored.state, (update for _, update in stored.updates), limits=limits)


def append_missing(
    conn: sa.Connection, note_id: str, state: bytes, limits: document.Limits = DEFAULT_LIMITS
) -> int | None:
    """Append what ``state`` (a document's whole state, say) holds that the stored note lacks,
    as one update, under the note's lock; its seq, or None when storage had it all. For
    updates that only a process that died may have stored: two processes storing them at
    once take turns, and the second finds nothing missing."""
    lock_note(conn, "store", note_id)
    change = document.missing(load_doc(conn, note_id, limits), state)
    if change is None:
        return None
    appended = append(conn, {note_id: [change]})
    if note_id in appended.failures:
        raise appended.failures[note_id]
    return appended.seqs[note_id][0]


def refused_note_message(note_id: str, exc: Exception) -> str:
    """Why a stored note cannot be opened, and what repairs it."""
    return (
        f"note {note_id} holds stored content refused by the update checks ({exc}); "
        f"an administrator can export and repair it: coscribe notes repair {note_id}"
    )


def merge_log(note_id: str, base: Row | None, log: list[tuple[int, bytes]]) -> tuple[bytes, bytes]:
    try:
        return document.merge(None if base is None else base["state"], [u for _, u in log])
    except document.InvalidUpdate as exc:
        # Stored bytes that do not apply: keep every row as it is for someone to look at.
        raise ConflictError(
            f"note {note_id!r} has stored data that does not apply: {exc}"
        ) from None


def newest_snapshot(note_id: str, *columns: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """Those columns of the note's newest snapshot: the highest through_seq (the highest id
    on a tie), the one a load starts from."""
    return (
        sa.select(*columns)
        .where(note_snapshots.c.note_id == note_id)
        .order_by(note_snapshots.c.through_seq.desc(), note_snapshots.c.id.desc())
        .limit(1)
    )


def snapshot_row(
    note_id: str,
    through_seq: int,
    state: bytes,
    vector: bytes,
    kind: str,
    label: str | None,
    created_at: datetime,
) -> dict[str, Any]:
    """A note_snapshots row: a compaction snapshot or a version (by ``kind``)."""
    return {
        "note_id": note_id,
        "through_seq": through_seq,
        "state": state,
        "state_vector": vector,
        "kind": kind,
        "label": label,
        "created_at": created_at,
    }


def insert_snapshot(conn: sa.Connection, row: dict[str, Any]) -> int:
    """Insert a row made by snapshot_row; returns its id."""
    return conn.execute(
        sa.insert(note_snapshots).values(**row).returning(note_snapshots.c.id)
    ).scalar_one()
