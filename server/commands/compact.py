"""`coscribe compact`: fold notes' update logs into snapshots, safely beside a running server."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from persistence import compaction, notes

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
    Prints, per note and in total, the rows and bytes a load reads before and after (the
    newest snapshot and the updates after it) and the log rows deleted (with those an older
    snapshot, such as a version, already held). --dry-run prints the same numbers.
    """
    if bool(note_ids) == all_notes:
        raise UserError("name the notes to compact, or pass --all (not both)")
    out = Console(highlight=False)
    with current_database(writes=not dry_run) as (_, db):
        with db.read() as conn:
            if note_ids:
                for note_id in note_ids:
                    notes.get_note(conn, note_id, include_deleted=True)  # NotFoundError -> 1 line
        if dry_run:
            with db.read() as conn:
                plans = compaction.preview(conn, list(note_ids) or None, min_updates=min_updates)
            # The same numbers the real run prints (CompactionResult), so the two agree.
            for plan in plans:
                out.print(
                    f"{plan.note_id}: {_rows(plan.rows_before, plan.bytes_before)} -> 1 rows; "
                    f"{plan.log_rows} log rows to delete (dry run)"
                )
            out.print(
                f"would compact {len(plans)} notes: "
                f"{_rows(sum(p.rows_before for p in plans), sum(p.bytes_before for p in plans))}"
                f" -> {len(plans)} rows; {sum(p.log_rows for p in plans)} log rows to delete"
            )
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
                before = _rows(result.rows_before, result.bytes_before)
                after = _rows(result.rows_after, result.bytes_after)
                out.print(f"{step.note_id}: {before} -> {after}; {result.deleted} log rows deleted")

        with bar:
            totals = compaction.compact_notes(
                db, list(note_ids) or None, min_updates=min_updates, progress=progress
            )
        failures = [f"{note_id}: {why}" for note_id, why in totals.skipped]
        out.print(
            f"compacted {totals.notes} notes: {_rows(totals.rows_before, totals.bytes_before)} "
            f"-> {_rows(totals.rows_after, totals.bytes_after)}; {totals.deleted} log rows deleted"
        )
        if failures:
            raise UserError("; ".join(failures))


def _rows(rows: int, size: int) -> str:
    """What a load reads: the newest snapshot and the updates after it."""
    return f"{rows} rows, {human_bytes(size)}"
