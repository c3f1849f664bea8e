"""`coscribe schedules list`."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from persistence.stores import schedules as store

from ..jobs import ensure_builtin_schedules
from .base import current_database, user_errors


@click.group(epilog="Example: coscribe schedules list")
def schedules() -> None:
    """Schedules: cron expressions that queue background jobs."""


@schedules.command("list", epilog="Example: coscribe schedules list")
@user_errors
def list_schedules() -> None:
    """List every schedule with its cron expression, job and next run.

    The built-in compaction and retention schedules are created if they are missing (the
    server does the same when it starts)."""
    with current_database() as (settings, db):
        ensure_builtin_schedules(db, settings)
        with db.read() as conn:
            rows, cursor = [], None
            while True:
                page = store.list_schedules(conn, cursor=cursor, limit=500)
                rows += page.items
                if (cursor := page.next_cursor) is None:
                    break
    table = Table("name", "cron", "timezone", "job", "enabled", "next run", "last run")
    for row in sorted(rows, key=lambda r: r["name"]):
        table.add_row(
            row["name"],
            row["cron"],
            row["timezone"],
            row["job_kind"],
            "yes" if row["enabled"] else "no",
            _when(row["next_run_at"]),
            _when(row["last_run_at"]),
        )
    Console(width=160).print(table)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"
