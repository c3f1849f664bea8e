"""Compaction: fold a note's update log into a snapshot and delete the rows it merged.

Compaction deletes only rows the newest snapshot holds (the one it writes, or the one it
found), and none above max_seq; anything appended meanwhile has a larger seq and survives.
On PostgreSQL two compactions of one note exclude each other with an advisory lock; on
SQLite every write transaction is already exclusive.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from .checks import as_now
from .errors import ConflictError
from .notes import check_note_id, get_note
from .schema import note_updates
from .update_log import check_seq, insert_snapshot, merge_log, read_log


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


def _advisory_key(note_id: str) -> int:
    digest = hashlib.blake2b(f"coscribe:compact:{note_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def compact_note(
    conn: sa.Connection,
    note_id: str,
    *,
    max_seq: int | None = None,
    now: datetime | None = None,
) -> CompactionResult:
    """Fold the updates after the newest snapshot (up to max_seq) into a new snapshot.

    ``max_seq`` defaults to the highest seq stored; the new snapshot's through_seq is the
    highest seq actually merged, never a seq this transaction cannot see. Then the update
    rows up to that seq (and up to max_seq) are deleted: the merged ones, and any an older
    snapshot already held (left behind by versions, which delete nothing). Rows appended
    meanwhile survive.
    ConflictError when another compaction of the note is running (PostgreSQL).
    """
    check_note_id(note_id)
    if max_seq is not None:
        check_seq("max_seq", max_seq)
    now = as_now(now)
    get_note(conn, note_id)
    if conn.dialect.name == "postgresql":
        locked = conn.execute(
            sa.select(sa.func.pg_try_advisory_xact_lock(_advisory_key(note_id)))
        ).scalar_one()
        if not locked:
            raise ConflictError(f"compaction of note {note_id!r} is already running")
    base, log = read_log(conn, note_id, max_seq)
    old_through = 0 if base is None else base["through_seq"]
    base_rows, base_bytes = (0, 0) if base is None else (1, len(base["state"]))
    snapshot_id = None
    through, rows_after, bytes_after = old_through, base_rows, base_bytes
    if log:
        through = log[-1][0]
        state, vector = merge_log(note_id, base, log)
        snapshot_id = insert_snapshot(
            conn, note_id, through, state, vector, "compaction", None, now
        )
        rows_after, bytes_after = 1, len(state)
    # Rows up to `through` are merged or were already held by the base snapshot; none above
    # max_seq is ever touched.
    delete_through = through if max_seq is None else min(through, max_seq)
    deleted = conn.execute(
        sa.delete(note_updates).where(
            note_updates.c.note_id == note_id, note_updates.c.seq <= delete_through
        )
    ).rowcount
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
