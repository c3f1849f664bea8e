"""Compaction: fold a note's update log into a snapshot and delete the rows it merged.

Merging a long log takes seconds (the 260,000-edit trace: about 4 s), and on SQLite a write
transaction holds the database's only write lock: every other note's writes would wait for
it. So compact_note works in steps, and only the last two write, in short transactions:

1. read: the newest snapshot and the updates after it, up to max_seq, in a read transaction
   (one statement: a consistent prefix of the log, see update_log);
2. merge them into one state, outside any transaction;
3. write, in a short transaction: check that the snapshot read in 1 is still the note's newest
   (another compaction, or a version, may have written one meanwhile: then start over from 1,
   which now reads little) and insert the new snapshot;
4. delete the rows it holds: on SQLite DELETE_BATCH_ROWS per transaction, with a pause
   between two so that waiting writers get their turn; on PostgreSQL, where these row locks
   keep no one waiting, in one. Once the snapshot is
   committed no load reads those rows again (update_log: rows at or below the newest
   snapshot's through_seq), so they may go in as many transactions as it takes, and a
   compaction stopped halfway leaves only dead rows the next one deletes.

What is deleted is exactly what the newest snapshot holds (the one written, or the one found
when there is nothing to merge), and never a row above max_seq: updates appended meanwhile
have larger seqs and survive. On PostgreSQL the write steps of two compactions of one note
take turns on an advisory lock; on SQLite every write transaction is exclusive anyway.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .checks import as_now
from .engine import Database
from .errors import ConflictError, InvalidError, NotFoundError, StoreError
from .locks import lock_note
from .notes import check_note_id, get_note
from .paging import Row
from .schema import note_snapshots, note_updates, notes
from .update_log import (
    check_seq,
    insert_snapshot,
    log_sizes,
    merge_log,
    newest_snapshot,
    read_log,
    snapshot_row,
)

# Rows per DELETE once the snapshot is committed: deleting the 260,000 rows of a long log in
# one statement holds SQLite's write lock for over a second; 10,000 take tens of milliseconds.
DELETE_BATCH_ROWS = 10_000
# On SQLite, the pause between two DELETEs. A writer waiting for the lock polls for it (the
# busy handler sleeps up to 100 ms between tries): without a pause the next DELETE takes the
# lock again before the waiting writer looks, and it can starve until its busy timeout.
DELETE_PAUSE_S = 0.1
# A compaction whose snapshot was superseded while it merged starts over; each attempt reads
# only what the winner left, so more than a few means something keeps writing snapshots.
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class CompactionResult:
    note_id: str
    through_seq: int  # the note's newest snapshot now holds every update up to this seq
    merged: int  # update rows folded into the new snapshot (0: nothing to do)
    deleted: int  # update rows deleted: the merged ones plus any an older snapshot covered
    snapshot_id: int | None  # the new snapshot, None when nothing was merged
    rows_before: int  # rows a load read for seqs <= through_seq before: base snapshot + merged
    bytes_before: int
    rows_after: int  # ... and after: the one new snapshot
    bytes_after: int

    @property
    def compacted(self) -> bool:
        return self.snapshot_id is not None


@dataclass(frozen=True)
class CompactionProgress:
    """Where compact_notes is: called once as a note starts (no result, no error) and once
    as it ends (its result, or the error it was skipped for)."""

    done: int  # notes finished before this one
    total: int
    note_id: str
    result: CompactionResult | None = None
    error: StoreError | None = None

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None


ProgressCallback = Callable[[CompactionProgress], None]


@dataclass
class CompactionTotals:
    """What compact_notes did: each note's result, the notes skipped, and the sums."""

    results: list[CompactionResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (note id, why)

    @property
    def notes(self) -> int:
        return len(self.results)

    def _sum(self, name: str) -> int:
        return sum(getattr(result, name) for result in self.results)

    @property
    def rows_before(self) -> int:
        return self._sum("rows_before")

    @property
    def rows_after(self) -> int:
        return self._sum("rows_after")

    @property
    def bytes_before(self) -> int:
        return self._sum("bytes_before")

    @property
    def bytes_after(self) -> int:
        return self._sum("bytes_after")

    @property
    def deleted(self) -> int:
        return self._sum("deleted")

    def as_dict(self) -> dict[str, Any]:
        return {
            "notes": self.notes,
            "skipped": [{"note_id": note_id, "reason": why} for note_id, why in self.skipped],
            "rows_before": self.rows_before,
            "rows_after": self.rows_after,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "deleted": self.deleted,
        }


def compact_notes(
    db: Database,
    note_ids: Sequence[str] | None = None,
    *,
    min_updates: int = 1,
    progress: ProgressCallback | None = None,
) -> CompactionTotals:
    """Compact every note whose update log holds at least ``min_updates`` rows (of
    ``note_ids``, or of all notes), one after the other, each as compact_note does.

    A note deleted meanwhile, or whose stored data does not apply, is skipped with its
    reason and the others go on; ``progress`` hears of each note as it starts and ends.
    """
    with db.read() as conn:
        candidates = log_sizes(conn, note_ids=note_ids, min_updates=min_updates)
    totals = CompactionTotals()
    for done, candidate in enumerate(candidates):
        note_id = candidate["note_id"]
        if progress is not None:
            progress(CompactionProgress(done, len(candidates), note_id))
        try:
            result = compact_note(db, note_id)
        except (ConflictError, NotFoundError, InvalidError) as exc:
            totals.skipped.append((note_id, str(exc)))
            if progress is not None:
                progress(CompactionProgress(done, len(candidates), note_id, error=exc))
            continue
        totals.results.append(result)
        if progress is not None:
            progress(CompactionProgress(done, len(candidates), note_id, result=result))
    return totals


@dataclass(frozen=True)
class CompactionPreview:
    """What compact_note would do to a note now, counted the way CompactionResult counts."""

    note_id: str
    log_rows: int  # every update row of the note: what the compaction deletes
    log_bytes: int
    rows_before: int  # what a load reads now: the newest snapshot + the updates after it
    bytes_before: int


def preview(
    conn: sa.Connection, note_ids: Sequence[str] | None = None, *, min_updates: int = 1
) -> list[CompactionPreview]:
    """The notes compact_notes would compact (same selection, same order), and for each the
    numbers its result would report, without merging anything: `coscribe compact --dry-run`
    and the real run then agree. Rows an older snapshot already holds (versions leave them)
    count in ``log_rows`` but not in ``rows_before``, as in the result."""
    previews = []
    for candidate in log_sizes(conn, note_ids=note_ids, min_updates=min_updates):
        note_id = candidate["note_id"]
        base = conn.execute(
            newest_snapshot(
                note_id, note_snapshots.c.through_seq, sa.func.length(note_snapshots.c.state)
            )
        ).first()
        through, base_bytes = (0, 0) if base is None else (base[0], int(base[1] or 0))
        size = sa.func.coalesce(sa.func.sum(sa.func.length(note_updates.c.update)), 0)
        rows, size = conn.execute(
            sa.select(sa.func.count(), size).where(
                note_updates.c.note_id == note_id, note_updates.c.seq > through
            )
        ).one()
        previews.append(
            CompactionPreview(
                note_id=note_id,
                log_rows=candidate["rows"],
                log_bytes=candidate["bytes"],
                rows_before=(0 if base is None else 1) + int(rows),
                bytes_before=base_bytes + int(size),
            )
        )
    return previews


@dataclass(frozen=True)
class _Read:
    """Step 1's result: what will be merged, and what it was read on top of."""

    note_id: str
    base: Row | None  # the newest snapshot when read
    log: list[tuple[int, bytes]]  # the updates after it, up to max_seq
    max_seq: int | None


def compact_note(
    db: Database,
    note_id: str,
    *,
    max_seq: int | None = None,
    now: datetime | None = None,
) -> CompactionResult:
    """Fold the updates after the newest snapshot (up to max_seq) into a new snapshot.

    ``max_seq`` defaults to the highest seq stored; the new snapshot's through_seq is the
    highest seq actually merged, never one the read did not see. Then the update rows up to
    that seq (and up to max_seq) are deleted: the merged ones, and any an older snapshot
    already held (left behind by versions, which delete nothing). Rows appended meanwhile
    survive. The write lock is held only for the short write at the end (module docstring).

    NotFoundError for an unknown or deleted note; ConflictError for stored data that does
    not apply, or when other snapshots kept superseding this one's (MAX_ATTEMPTS).
    """
    note_id, max_seq, now = _arguments(note_id, max_seq, now)
    for _ in range(MAX_ATTEMPTS):
        with db.read() as conn:
            read = _read(conn, note_id, max_seq)
        merged = _merge(read)  # outside any transaction: no lock held while it runs
        with db.begin() as conn:
            result = _write(conn, read, merged, now, delete=False)
        if result is None:
            continue
        return dataclasses.replace(result, deleted=_delete_held(db, note_id, result.deleted))
    raise ConflictError(
        f"compaction of note {note_id!r} was superseded {MAX_ATTEMPTS} times by other "
        "snapshots written meanwhile; retry later"
    )


def compact_note_in(
    conn: sa.Connection,
    note_id: str,
    *,
    max_seq: int | None = None,
    now: datetime | None = None,
) -> CompactionResult:
    """compact_note inside the caller's transaction (which then holds its locks throughout):
    for maintenance that owns the database, and for tests that compact between other writes."""
    note_id, max_seq, now = _arguments(note_id, max_seq, now)
    for _ in range(MAX_ATTEMPTS):
        read = _read(conn, note_id, max_seq)
        result = _write(conn, read, _merge(read), now, delete=True)
        if result is not None:
            return result
    raise ConflictError(f"compaction of note {note_id!r} kept being superseded; retry later")


def _arguments(
    note_id: str, max_seq: int | None, now: datetime | None
) -> tuple[str, int | None, datetime]:
    check_note_id(note_id)
    if max_seq is not None:
        check_seq("max_seq", max_seq)
    return note_id, max_seq, as_now(now)


def _read(conn: sa.Connection, note_id: str, max_seq: int | None) -> _Read:
    get_note(conn, note_id)
    base, log = read_log(conn, note_id, max_seq)
    return _Read(note_id, base, log, max_seq)


def _merge(read: _Read) -> tuple[bytes, bytes] | None:
    return merge_log(read.note_id, read.base, read.log) if read.log else None


def _write(
    conn: sa.Connection,
    read: _Read,
    merged: tuple[bytes, bytes] | None,
    now: datetime,
    *,
    delete: bool,
) -> CompactionResult | None:
    """Step 3: the snapshot, and with ``delete`` the deletion; None when ``read.base`` is no
    longer the newest snapshot (the caller starts over). Without ``delete`` the result's
    ``deleted`` is the highest seq to delete: step 4 deletes them."""
    note_id, base, log = read.note_id, read.base, read.log
    # Two compactions of one note write one after the other, and the second then sees the
    # first's snapshot (READ COMMITTED: each statement sees what committed before it).
    lock_note(conn, "compact", note_id)
    found = conn.execute(
        sa.select(notes.c.id).where(notes.c.id == note_id, notes.c.deleted_at.is_(None))
    ).first()
    if found is None:
        raise NotFoundError(f"note {note_id!r} not found")
    newest = conn.execute(newest_snapshot(note_id, note_snapshots.c.id)).scalar_one_or_none()
    if newest != (None if base is None else base["id"]):
        return None
    old_through = 0 if base is None else base["through_seq"]
    base_rows, base_bytes = (0, 0) if base is None else (1, len(base["state"]))
    snapshot_id = None
    through, rows_after, bytes_after = old_through, base_rows, base_bytes
    if merged is not None:
        through = log[-1][0]
        state, vector = merged
        snapshot_id = insert_snapshot(
            conn, snapshot_row(note_id, through, state, vector, "compaction", None, now)
        )
        rows_after, bytes_after = 1, len(state)
    # Rows up to `through` are merged or were already held by the base snapshot; none above
    # max_seq is ever touched.
    delete_through = through if read.max_seq is None else min(through, read.max_seq)
    deleted = _delete(conn, note_id, 0, delete_through) if delete else delete_through
    return CompactionResult(
        note_id=note_id,
        through_seq=through,
        merged=len(log),
        deleted=deleted,
        snapshot_id=snapshot_id,
        rows_before=base_rows + len(log),
        bytes_before=base_bytes + sum(len(update) for _, update in log),
        rows_after=rows_after,
        bytes_after=bytes_after,
    )


def _delete(conn: sa.Connection, note_id: str, after: int, through: int) -> int:
    """Delete the note's update rows with ``after < seq <= through``."""
    return conn.execute(
        sa.delete(note_updates).where(
            note_updates.c.note_id == note_id,
            note_updates.c.seq > after,
            note_updates.c.seq <= through,
        )
    ).rowcount


def _delete_held(db: Database, note_id: str, through: int) -> int:
    """Step 4: delete the rows up to ``through``, which the newest snapshot holds.

    On SQLite in seq ranges of DELETE_BATCH_ROWS (seqs are unique, so no range holds more
    rows), each its own transaction, with a pause between two. On PostgreSQL in one: its row
    locks are on rows nobody reads or writes again, so they keep no one waiting.
    """
    with db.read() as conn:
        lowest = conn.execute(
            sa.select(sa.func.min(note_updates.c.seq)).where(
                note_updates.c.note_id == note_id, note_updates.c.seq <= through
            )
        ).scalar_one()
    if lowest is None:
        return 0
    width = through if db.driver == "postgres" else DELETE_BATCH_ROWS
    deleted, after = 0, lowest - 1
    while after < through:
        upto = min(after + width, through)
        with db.begin() as conn:
            deleted += _delete(conn, note_id, after, upto)
        after = upto
        if after < through:
            time.sleep(DELETE_PAUSE_S)
    return deleted
