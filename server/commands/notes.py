"""`coscribe notes check | repair`: find and repair notes stored with refused content."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from persistence import repair as repairs

from .base import UserError, current_database, human_bytes, user_errors


@click.group(epilog="Example: coscribe notes check")
def notes() -> None:
    """Notes stored with content the update checks refuse (stored before they existed)."""


@notes.command(epilog="Example: coscribe notes check meeting-notes")
@click.argument("note_ids", nargs=-1)
@user_errors
def check(note_ids: tuple[str, ...]) -> None:
    """Report the notes (every one, or those named) holding stored snapshots or updates that
    the update checks refuse, and why. Reads only; exits 1 if any note is refused."""
    out = Console(highlight=False, width=200)
    found = 0
    with current_database() as (settings, db), db.read() as conn:
        for inspection in repairs.inspect_notes(conn, list(note_ids) or None, settings.crdt_limits):
            if inspection.ok:
                continue
            found += 1
            for piece in inspection.refused:
                out.print(f"{inspection.note_id}: {piece.name} refused ({piece.refused})")
    out.print(f"{found} notes with refused content")
    if found:
        sys.exit(1)


@notes.command(epilog="Example: coscribe notes repair meeting-notes --out ./meeting-notes.refused")
@click.argument("note_id")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="New folder for the refused pieces, written first [default: ./NOTE_ID.refused].",
)
@click.option("--dry-run", is_flag=True, help="Show what would be saved and kept; change nothing.")
@user_errors
def repair(note_id: str, out_dir: Path | None, dry_run: bool) -> None:
    """Save every refused stored piece of a note, raw, to a folder, then rebuild the note
    from the pieces that pass. Run it while no server has the note open."""
    out = Console(highlight=False, width=200)
    out_dir = out_dir or Path(f"{note_id}.refused")
    with current_database(writes=not dry_run) as (settings, db), db.begin() as conn:
        result = repairs.repair_note(
            conn, note_id, out_dir, limits=settings.crdt_limits, dry_run=dry_run
        )
    inspection = result.inspection
    if inspection.ok:
        out.print(f"{note_id}: nothing refused, nothing to repair")
        return
    verb = "would save" if dry_run else "saved"
    for piece in inspection.refused:
        where = "" if dry_run else f" to {out_dir / (piece.name + '.bin')}"
        out.print(f"{note_id}: {verb} {piece.name} ({human_bytes(piece.size)}){where}")
        out.print(f"  refused: {piece.refused}")
    kept = ", ".join(piece.name for piece in inspection.kept) or "nothing"
    if dry_run:
        out.print(
            f"{note_id}: would rebuild from {kept} ({human_bytes(result.state_bytes)}) (dry run)"
        )
        return
    out.print(
        f"{note_id}: rebuilt from {kept}: one snapshot through seq {result.through_seq} "
        f"({human_bytes(result.state_bytes)})"
    )
    if not inspection.kept:
        raise UserError(f"{note_id}: nothing passed the checks; the note is now empty")
