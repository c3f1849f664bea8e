"""`coscribe export FILE` and `coscribe import FILE`: the whole database as one portable file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from persistence import archive

from ..settings import load_settings
from .base import UserError, current_database, human_bytes, user_errors


@contextlib.contextmanager
def _progress(action: str) -> Iterator[archive.ProgressCallback | None]:
    """A progress bar on stderr when it is a terminal; nothing at all otherwise."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    bar = Progress(
        TextColumn(f"{action} {{task.description:<22}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with bar:
        task = bar.add_task("", total=None)

        def update(progress: archive.ArchiveProgress) -> None:
            bar.update(
                task,
                total=progress.total or None,
                completed=progress.done,
                description=progress.table,
            )

        yield update


def _table_lines(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"  {name:<{width}}  {value}")


@click.command(
    "export",
    epilog="\b\nExample: coscribe export backup-2030-01-01.coscribe.gz\n"
    "Example: DATABASE_URL=postgresql://app@db/coscribe coscribe export --force nightly.gz",
)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists already.")
@user_errors
def export(file: Path, force: bool) -> None:
    """Write the whole database to FILE, a portable archive (gzip-compressed JSON Lines).

    Everything is in it: workspaces, agents, codebases, conversations and their messages,
    tasks and their dependencies, schedules, background tasks, and every note (deleted ones
    too) with its content and all its versions. It is read in one transaction, so it is
    safe while `coscribe serve` runs. A failed export leaves nothing under FILE.
    `coscribe import` loads it into another database, SQLite or PostgreSQL.
    """
    if file.exists() and not force and not file.is_dir():
        raise UserError(f"{file} already exists: pass --force to overwrite it")
    settings = load_settings()
    config = settings.database
    if config.driver == "sqlite" and config.sqlite_path and not config.sqlite_path.exists():
        raise UserError(f"no database at {config.sqlite_path}: nothing to export")
    with current_database(settings) as (_, db), _progress("exporting") as progress:
        try:
            report = archive.export_archive(db, file, overwrite=force, progress=progress)
        except archive.ArchiveExistsError:
            raise UserError(f"{file} already exists: pass --force to overwrite it") from None
    rows = sum(count for name, count in report.counts.items() if name != "notes")
    click.echo(
        f"exported {config.driver} to {report.path} ({human_bytes(report.bytes)}): "
        f"{rows} rows, {report.notes} notes, {report.versions} versions"
    )
    lines = [
        (name, f"{count} ({report.deleted_notes} deleted)" if name == "notes" else str(count))
        for name, count in report.counts.items()
    ]
    lines.append(("versions", str(report.versions)))
    lines.append(("note states", human_bytes(report.state_bytes)))
    _table_lines(lines)


@click.command(
    "import",
    epilog="\b\nExample: DATABASE_URL=postgresql://app@db/coscribe coscribe import backup.gz\n"
    "Example: coscribe import --merge colleague.coscribe.gz",
)
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--merge",
    is_flag=True,
    help="Import into a database that has data already: rows whose ids exist are skipped, "
    "and notes that exist get the archived content merged in (CRDT merge).",
)
@user_errors
def import_(file: Path, merge: bool) -> None:
    """Load the archive FILE (made by `coscribe export`) into the database.

    All or nothing: it runs in one transaction. The database must be migrated and, without
    --merge, empty. Notes load with the same content, state vectors and versions as in the
    archive; every other row keeps its id, timestamps and fields. Stop `coscribe serve` on
    the target first: live rooms would not see merged content.
    """
    with current_database() as (_, db), _progress("importing") as progress:
        report = archive.import_archive(db, file, merge=merge, progress=progress)
        driver = db.driver
    added = sum(count for name, count in report.added.items() if name != "notes")
    skipped = sum(count for name, count in report.skipped.items() if name != "notes")
    click.echo(
        f"imported {report.path} ({human_bytes(report.bytes)}) into {driver}: {added} rows, "
        f"{report.notes} notes, {report.versions} versions added"
        + (
            f"; {skipped} rows and {report.notes_merged} notes were there already "
            f"({report.notes_changed} notes changed by merging)"
            if merge
            else ""
        )
    )
    rows = []
    for name, count in report.added.items():
        value = str(count)
        if merge:
            value += f" added, {report.skipped[name]} skipped"
        if name == "notes" and merge:
            value += f" ({report.notes_merged} merged, {report.notes_changed} changed by it)"
        rows.append((name, value))
    versions = str(report.versions)
    if merge:
        versions += f" added, {report.versions_skipped} skipped"
    rows.append(("versions", versions))
    rows.append(("note states", human_bytes(report.state_bytes)))
    _table_lines(rows)
