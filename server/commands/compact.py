"""`coscribe compact`: fold notes' update logs into snapshots, safely beside a running server."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from persistence import compaction, notes, update_log
from persistence.errors import ConflictError, NotFoundError

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
            candidates = update_log.log_sizes(
                conn, note_ids=list(note_ids) or None, min_updates=min_updates
            )
        if dry_run:
            for c in candidates:
                out.print(
                    f"{c['note_id']}: {c['rows']} log rows, {human_bytes(c['bytes'])} (dry run)"
                )
            out.print(f"would compact {len(candidates)} notes")
            return
        totals = {"before_rows": 0, "after_rows": 0, "before_bytes": 0, "after_bytes": 0}
        failures = []
        progress = Progress(
            TextColumn("compacting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
            transient=True,
        )
        with progress:
            task = progress.add_task("", total=len(candidates))
            for c in candidates:
                progress.update(task, description=c["note_id"])
                try:
                    result = compaction.compact_note(db, c["note_id"])
                except (ConflictError, NotFoundError) as exc:
                    failures.append(f"{c['note_id']}: {exc}")
                    progress.advance(task)
                    continue
                progress.advance(task)
                totals["before_rows"] += result.rows_before
                totals["after_rows"] += result.rows_after
                totals["before_bytes"] += result.bytes_before
                totals["after_bytes"] += result.bytes_after
                before = f"{result.rows_before} rows, {human_bytes(result.bytes_before)}"
                after = f"{result.rows_after} rows, {human_bytes(result.bytes_after)}"
                out.print(f"{c['note_id']}: {before} -> {after}")
        done = len(candidates) - len(failures)
        out.print(
            f"compacted {done} notes: {totals['before_rows']} rows, "
            f"{human_bytes(totals['before_bytes'])} -> {totals['after_rows']} rows, "
            f"{human_bytes(totals['after_bytes'])}"
        )
        if failures:
            raise UserError("; ".join(failures))
