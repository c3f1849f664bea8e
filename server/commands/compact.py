"""`coscribe compact`: fold notes' update logs into snapshots, safely beside a running server."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from persistence import compaction, notes, update_log

from .base import UserError, current_database, human_bytes, user_errors


@click.command(
    epilog="Example: coscribe compact --all --min-updates 100    "
    "Example: coscribe compact meeting-notes --dry-run"
)
@click.argument("note_ids", nargs=-1)
@click.option("--all", "all_notes", is_flag=True, help="Every note whose log is long enough.")
@click.option(
    "--min-updates",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Only notes whose update log holds at least this many rows.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be compacted; change nothing.")
@user_errors
def compact(note_ids: tuple[str, ...], all_notes: bool, min_updates: int, dry_run: bool) -> None:
    """Merge each note's update log into a snapshot and delete the merged rows.

    Safe while `coscribe serve` runs on the same database: updates stored meanwhile are kept.
    Prints rows and bytes before and after, per note and in total.
    """
    if bool(note_ids) == all_notes:
        raise UserError("name the notes to compact, or pass --all (not both)")
    out = Console(highlight=False)
    with current_database() as (_, db):
        with db.read() as conn:
            if note_ids:
                for note_id in note_ids:
                    notes.get_note(conn, note_id, include_deleted=True)  # NotFoundError -> 1 line
        if dry_run:
            with db.read() as conn:
                candidates = update_log.log_sizes(
                    conn, note_ids=list(note_ids) or None, min_updates=min_updates
                )
            for c in candidates:
                out.print(
                    f"{c['note_id']}: {c['rows']} log rows, {human_bytes(c['bytes'])} (dry run)"
                )
            out.print(f"would compact {len(candidates)} notes")
            return
        bar = Progress(
            TextColumn("compacting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
            transient=True,
        )
        task = bar.add_task("", total=None)

        def progress(step: compaction.CompactionProgress) -> None:
            if not step.finished:
                bar.update(task, total=step.total, description=step.note_id)
                return
            bar.advance(task)
            if step.result is not None:
                result = step.result
                before = f"{result.rows_before} rows, {human_bytes(result.bytes_before)}"
                after = f"{result.rows_after} rows, {human_bytes(result.bytes_after)}"
                out.print(f"{step.note_id}: {before} -> {after}")

        with bar:
            totals = compaction.compact_notes(
                db, list(note_ids) or None, min_updates=min_updates, progress=progress
            )
        failures = [f"{note_id}: {why}" for note_id, why in totals.skipped]
        out.print(
            f"compacted {totals.notes} notes: {totals.rows_before} rows, "
            f"{human_bytes(totals.bytes_before)} -> {totals.rows_after} rows, "
            f"{human_bytes(totals.bytes_after)}"
        )
        if failures:
            raise UserError("; ".join(failures))
