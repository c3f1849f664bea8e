"""A note's durable content: an append-only update log plus snapshots (DESIGN section 3).

Every function takes the caller's Connection and never commits: the caller owns the
transaction. Input is checked before any SQL runs, and the driver errors a race can still
cause come back as StoreErrors.

Invariants the concurrency story rests on:

* Seqs are allocated only by the appends here, with ``UPDATE notes SET last_seq = last_seq + n``
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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pycrdt
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from crdt import document

from .checks import as_now
from .errors import ConflictError, InvalidError, NotFoundError, StoreError
from .notes import check_note_id, get_note
from .paging import Row
from .schema import note_snapshots, note_updates, notes

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


def append_update(
    conn: sa.Connection, note_id: str, update: bytes, *, now: datetime | None = None
) -> int:
    """Append one update; returns its seq."""
    return append_updates(conn, note_id, [update], now=now)[0]


def append_updates(
    conn: sa.Connection, note_id: str, updates: Sequence[bytes], *, now: datetime | None = None
) -> list[int]:
    """Append updates in order (group commit); returns their seqs, consecutive and increasing.

    NotFoundError for an unknown or soft-deleted note; InvalidError for an empty or oversize
    update (nothing is written then). The bytes are stored as given: callers store the
    update their Doc produced (see crdt.document.validate_update for foreign bytes).
    """
    check_note_id(note_id)
    if isinstance(updates, bytes | bytearray | memoryview | str):
        raise InvalidError("updates: expected a sequence of updates, got a single value")
    payloads = [_update_bytes(update, index) for index, update in enumerate(updates)]
    now = as_now(now)
    if not payloads:
        get_note(conn, note_id)
        return []
    count = len(payloads)
    try:
        # A savepoint, so that a failure leaves neither rows nor a bumped counter behind even
        # if the caller goes on with its transaction.
        with conn.begin_nested():
            # The row lock taken here is held until the caller commits: appenders of one note
            # queue up behind it, so seqs commit in order (see the module docstring).
            last = conn.execute(
                sa.update(notes)
                .where(notes.c.id == note_id, notes.c.deleted_at.is_(None))
                .values(last_seq=notes.c.last_seq + count, updated_at=now)
                .returning(notes.c.last_seq)
            ).scalar_one_or_none()
            if last is None:
                raise NotFoundError(f"note {note_id!r} not found")
            first = last - count + 1
            rows = [
                {"note_id": note_id, "seq": first + offset, "update": payload, "created_at": now}
                for offset, payload in enumerate(payloads)
            ]
            conn.execute(sa.insert(note_updates), rows)
    except sa_exc.IntegrityError:
        # Only rows written behind append_updates' back can clash with an allocated seq.
        raise ConflictError(f"note {note_id!r}: allocated seqs are already taken") from None
    return list(range(first, last + 1))


def append_batch(
    conn: sa.Connection, batch: Mapping[str, Sequence[bytes]], *, now: datetime | None = None
) -> dict[str, StoreError]:
    """Group commit for many notes at once: one counter UPDATE and one INSERT for all of them.

    Returns the notes that could not be appended (unknown or soft-deleted: NotFoundError; bad
    updates: InvalidError), with nothing written for those; every other note's updates are
    appended in order, exactly as append_updates would. Raises only for a failure of the
    statements themselves, and then the caller must roll back (or fall back to
    append_updates per note, each in its own savepoint).
    """
    now = as_now(now)
    failures: dict[str, StoreError] = {}
    payloads: dict[str, list[bytes]] = {}
    for note_id, updates in batch.items():
        try:
            check_note_id(note_id)
            payloads[note_id] = [_update_bytes(u, i) for i, u in enumerate(updates)]
        except InvalidError as exc:
            failures[note_id] = exc
    counts = {note_id: len(p) for note_id, p in payloads.items() if p}
    if not counts:
        return failures
    # Row locks on every note, held to commit: appends of each note stay in seq order.
    allocated = dict(
        conn.execute(
            sa.update(notes)
            .where(notes.c.id.in_(list(counts)), notes.c.deleted_at.is_(None))
            .values(
                last_seq=notes.c.last_seq + sa.case(counts, value=notes.c.id),
                updated_at=now,
            )
            .returning(notes.c.id, notes.c.last_seq)
        ).all()
    )
    rows = []
    for note_id, count in counts.items():
        last = allocated.get(note_id)
        if last is None:
            failures[note_id] = NotFoundError(f"note {note_id!r} not found")
            continue
        first = last - count + 1
        rows += [
            {"note_id": note_id, "seq": first + offset, "update": payload, "created_at": now}
            for offset, payload in enumerate(payloads[note_id])
        ]
    if rows:
        conn.execute(sa.insert(note_updates), rows)
    return failures


def read_log(
    conn: sa.Connection, note_id: str, max_seq: int | None = None
) -> tuple[Row | None, list[tuple[int, bytes]]]:
    """The newest snapshot and the updates after it (up to max_seq), in ONE statement.

    One statement sees one consistent database state on PostgreSQL too; reading the snapshot
    and then the updates could straddle a compaction's commit and miss the rows it merged.
    """
    base = (
        sa.select(
            note_snapshots.c.id,
            note_snapshots.c.through_seq,
            note_snapshots.c.state,
            note_snapshots.c.state_vector,
        )
        .where(note_snapshots.c.note_id == note_id)
        .order_by(note_snapshots.c.through_seq.desc(), note_snapshots.c.id.desc())
        .limit(1)
        .cte("base")
    )
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


def load_doc(conn: sa.Connection, note_id: str) -> pycrdt.Doc:
    """The note as a Doc (crdt.document.InvalidUpdate if stored bytes do not apply)."""
    stored = load_note(conn, note_id)
    return document.load(stored.state, (update for _, update in stored.updates))


def merge_log(note_id: str, base: Row | None, log: list[tuple[int, bytes]]) -> tuple[bytes, bytes]:
    try:
        return document.merge(None if base is None else base["state"], [u for _, u in log])
    except document.InvalidUpdate as exc:
        # Stored bytes that do not apply: keep every row as it is for someone to look at.
        raise ConflictError(
            f"note {note_id!r} has stored data that does not apply: {exc}"
        ) from None


def insert_snapshot(
    conn: sa.Connection,
    note_id: str,
    through_seq: int,
    state: bytes,
    vector: bytes,
    kind: str,
    label: str | None,
    now: datetime,
) -> int:
    return conn.execute(
        sa.insert(note_snapshots)
        .values(
            note_id=note_id,
            through_seq=through_seq,
            state=state,
            state_vector=vector,
            kind=kind,
            label=label,
            created_at=now,
        )
        .returning(note_snapshots.c.id)
    ).scalar_one()
