"""`coscribe prune [--dry-run]`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from persistence import retention

from .base import UserError, current_database, human_bytes, user_errors

# Ids shown per category; the rest are counted.
SHOW_IDS = 10


class OverridesSkipped(UserError):
    """Everything else was pruned, but some workspace overrides need fixing: exit 1."""

    exit_code = 1


def _period(seconds: int) -> str:
    if seconds == 0:
        return "forever"
    if seconds % retention.DAY_S == 0:
        days = seconds // retention.DAY_S
        return f"{days} day" + ("" if days == 1 else "s")
    return f"{seconds} s"


def _ids(ids: Sequence[Any]) -> str:
    shown = ", ".join(str(item) for item in ids[:SHOW_IDS])
    if len(ids) > SHOW_IDS:
        shown += f", ... and {len(ids) - SHOW_IDS} more"
    return shown


def _line(label: str, count: int, size: int, ids: Sequence[Any]) -> str:
    line = f"{label}: {count} ({human_bytes(size)})"
    return f"{line}: {_ids(ids)}" if ids else line


@click.command(epilog="Example: coscribe prune --dry-run && coscribe prune")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; change nothing.")
@user_errors
def prune(dry_run: bool) -> None:
    """Remove what the retention policy no longer keeps: versions older than the version
    period (never a note's newest), notes deleted longer ago than the deleted-note period,
    and finished background tasks older than the job period.

    Periods come from COSCRIBE_VERSION_RETENTION_S, COSCRIBE_DELETED_NOTE_RETENTION_S and
    COSCRIBE_JOB_RETENTION_S (0 keeps forever) and a workspace's settings
    {"retention": {...}}; see docs/operations.md.
    Exits 1 when some workspace's overrides are invalid (that workspace is left alone there).
    """
    with current_database(writes=not dry_run) as (settings, db):
        policy = settings.retention_policy
        if dry_run:
            with db.read() as conn:
                report = retention.prune(conn, policy, dry_run=True)
        else:
            report = retention.prune_batched(db, policy)
    click.echo(
        f"retention: versions {_period(policy.version_retention_s)}, "
        f"deleted notes {_period(policy.deleted_note_retention_s)}, "
        f"finished jobs {_period(policy.job_retention_s)} (workspaces may override)"
    )
    remove, purge = ("to remove", "to purge") if dry_run else ("removed", "purged")
    click.echo(
        _line(f"versions {remove}", len(report.versions), report.version_bytes, report.version_ids)
    )
    click.echo(
        _line(f"deleted notes {purge}", len(report.note_ids), report.note_bytes, report.note_ids)
    )
    click.echo(
        _line(f"finished jobs {remove}", len(report.job_ids), report.job_bytes, report.job_ids)
    )
    if dry_run:
        click.echo("dry run: nothing was changed")
    for problem in report.problems:
        click.echo(f"coscribe: warning: {problem}", err=True)
    if report.problems:
        count = len(report.problems)
        plural = "s" if count > 1 else ""
        raise OverridesSkipped(
            f"{count} invalid workspace retention override{plural}, listed above: "
            "what they govern was left alone"
        )
