"""Finding and repairing notes stored with content the update checks refuse.

Before updates were checked (crdt.validation), a note could be stored with content that
crashes pycrdt when it is read, rendered or edited: values or types nested tens of thousands
deep, clocks past 32 bits. Such a note is now refused when it is opened. ``inspect_note``
says which of its stored pieces (snapshots, including versions, and log updates) are refused
and why, without handing any of them to pycrdt. ``repair_note`` writes every refused piece,
raw, to a folder first (nothing is lost), then rebuilds the note from the pieces that pass:
the newest snapshot that passes and every logged update after it that passes, merged into a
new snapshot that replaces the log. Refused snapshots (versions too) are deleted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from crdt import document
from crdt.validation import DEFAULT_LIMITS, DepthTracker, Limits, UpdateRefused

from .errors import ConflictError, InvalidError
from .notes import get_note
from .schema import note_snapshots, note_updates, notes


@dataclass(frozen=True)
class Piece:
    """One stored row of a note: a snapshot (by id) or a logged update (by seq)."""

    kind: str  # "snapshot" or "update"
    id: int  # the snapshot's id, or the update's seq
    through_seq: int  # for a snapshot: the seq it holds everything up to; for an update: seq
    size: int
    refused: str | None = None  # why the checks refuse it

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.id}"


@dataclass
class Inspection:
    note_id: str
    base: Piece | None = None  # the newest snapshot that passes
    kept: list[Piece] = field(default_factory=list)  # base and the updates that pass
    refused: list[Piece] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused


@dataclass
class Repair:
    inspection: Inspection
    out_dir: Path | None
    through_seq: int
    state_bytes: int
    dry_run: bool


def _snapshots(conn: sa.Connection, note_id: str) -> list[tuple[int, int, bytes]]:
    rows = conn.execute(
        sa.select(note_snapshots.c.id, note_snapshots.c.through_seq, note_snapshots.c.state)
        .where(note_snapshots.c.note_id == note_id)
        .order_by(note_snapshots.c.through_seq.desc(), note_snapshots.c.id.desc())
    )
    return [(row.id, row.through_seq, bytes(row.state)) for row in rows]


def _updates(conn: sa.Connection, note_id: str, after: int) -> list[tuple[int, bytes]]:
    rows = conn.execute(
        sa.select(note_updates.c.seq, note_updates.c.update)
        .where(note_updates.c.note_id == note_id, note_updates.c.seq > after)
        .order_by(note_updates.c.seq)
    )
    return [(row.seq, bytes(row.update)) for row in rows]


def _refusal(tracker: DepthTracker, data: bytes) -> str | None:
    try:
        tracker.scan(data)
    except UpdateRefused as exc:
        return f"{exc.limit}: {exc}"
    return None


def _inspect(
    conn: sa.Connection, note_id: str, limits: Limits
) -> tuple[Inspection, dict[str, bytes]]:
    get_note(conn, note_id, include_deleted=True)
    inspection = Inspection(note_id)
    data: dict[str, bytes] = {}
    base_data: bytes | None = None
    for snapshot_id, through_seq, state in _snapshots(conn, note_id):
        # Each snapshot on its own: every one is a possible base, and a version to serve.
        reason = _refusal(DepthTracker(limits), state)
        piece = Piece("snapshot", snapshot_id, through_seq, len(state), reason)
        if reason is not None:
            inspection.refused.append(piece)
            data[piece.name] = state
        elif inspection.base is None:
            inspection.base, base_data = piece, state
            data[piece.name] = state
    tracker = DepthTracker(limits)
    if base_data is not None:
        tracker.scan(base_data)
        inspection.kept.append(inspection.base)
    after = inspection.base.through_seq if inspection.base else 0
    for seq, update in _updates(conn, note_id, after):
        reason = _refusal(tracker, update)
        piece = Piece("update", seq, seq, len(update), reason)
        (inspection.refused if reason else inspection.kept).append(piece)
        data[piece.name] = update
    return inspection, data


def inspect_note(conn: sa.Connection, note_id: str, limits: Limits = DEFAULT_LIMITS) -> Inspection:
    """Which stored pieces of the note the checks refuse; pycrdt reads none of them."""
    return _inspect(conn, note_id, limits)[0]


def inspect_notes(
    conn: sa.Connection, note_ids: Iterable[str] | None = None, limits: Limits = DEFAULT_LIMITS
) -> Iterable[Inspection]:
    """inspect_note for the named notes, or for every note (deleted ones too)."""
    if note_ids is None:
        note_ids = conn.execute(sa.select(notes.c.id).order_by(notes.c.id)).scalars().all()
    for note_id in note_ids:
        yield inspect_note(conn, note_id, limits)


def repair_note(
    conn: sa.Connection,
    note_id: str,
    out_dir: Path,
    *,
    limits: Limits = DEFAULT_LIMITS,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Repair:
    """Save the refused pieces to ``out_dir``, then rebuild the note from the others.

    Call inside a write transaction (the caller owns it). The folder is written, and its
    files flushed to disk, before anything in the database changes; it must not exist yet
    (nothing is overwritten). With ``dry_run`` nothing is written anywhere. A note with
    nothing refused is left alone.
    """
    inspection, data = _inspect(conn, note_id, limits)
    last_seq = conn.execute(sa.select(notes.c.last_seq).where(notes.c.id == note_id)).scalar_one()
    through = max([last_seq, *(piece.through_seq for piece in inspection.refused)])
    if inspection.ok:
        return Repair(inspection, None, through, 0, dry_run)
    kept = [data[piece.name] for piece in inspection.kept]
    state_base = kept[0] if inspection.base is not None else None
    updates = kept[1:] if inspection.base is not None else kept
    try:
        state, vector = document.merge(state_base, updates, limits=limits)
    except document.InvalidUpdate as exc:
        raise ConflictError(
            f"note {note_id!r}: what passes the checks does not apply: {exc}"
        ) from None
    if dry_run:
        return Repair(inspection, out_dir, through, len(state), dry_run)
    _save(out_dir, inspection, data)
    refused_snapshots = [p.id for p in inspection.refused if p.kind == "snapshot"]
    if refused_snapshots:
        conn.execute(sa.delete(note_snapshots).where(note_snapshots.c.id.in_(refused_snapshots)))
    conn.execute(
        sa.delete(note_updates).where(
            note_updates.c.note_id == note_id, note_updates.c.seq <= through
        )
    )
    conn.execute(
        sa.insert(note_snapshots).values(
            note_id=note_id,
            through_seq=through,
            state=state,
            state_vector=vector,
            kind="compaction",
            label=None,
            created_at=now or datetime.now(UTC),
        )
    )
    if through > last_seq:
        conn.execute(sa.update(notes).where(notes.c.id == note_id).values(last_seq=through))
    return Repair(inspection, out_dir, through, len(state), dry_run)


def _save(out_dir: Path, inspection: Inspection, data: dict[str, bytes]) -> None:
    """Every refused piece as a raw .bin file, and a manifest saying what each one was."""
    try:
        out_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise InvalidError(f"{out_dir} exists already: name a new folder") from None
    except OSError as exc:
        raise InvalidError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    manifest = {"note_id": inspection.note_id, "refused": []}
    for piece in inspection.refused:
        path = out_dir / f"{piece.name}.bin"
        _write(path, data[piece.name])
        manifest["refused"].append(
            {
                "file": path.name,
                "kind": piece.kind,
                "id": piece.id,
                "through_seq": piece.through_seq,
                "bytes": piece.size,
                "reason": piece.refused,
            }
        )
    _write(out_dir / "manifest.json", json.dumps(manifest, indent=2).encode() + b"\n")


def _write(path: Path, content: bytes) -> None:
    try:
        with open(path, "xb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise InvalidError(f"cannot write {path}: {exc.strerror or exc}") from None
