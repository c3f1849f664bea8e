"""`coscribe stats`: what the database holds, and what a running server has live."""

from __future__ import annotations

import click
import httpx
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from persistence.schema import note_snapshots, note_updates, notes

from .base import current_database, human_bytes, user_errors


@click.command(epilog="Example: coscribe stats --top 5 --url http://127.0.0.1:8000")
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many of the biggest notes to list.",
)
@click.option(
    "--url",
    default=None,
    help="Where the server runs, for live rooms [default: from COSCRIBE_HOST/PORT].",
)
@user_errors
def stats(top: int, url: str | None) -> None:
    """Notes, update log and snapshot sizes, the biggest notes, and live rooms."""
    with current_database() as (settings, db), db.read() as conn:
        count = sa.select(sa.func.count()).select_from(notes)
        live_notes = conn.execute(count.where(notes.c.deleted_at.is_(None))).scalar_one()
        deleted = conn.execute(count.where(notes.c.deleted_at.is_not(None))).scalar_one()
        log_rows, log_bytes = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(sa.func.length(note_updates.c.update)), 0),
            )
        ).one()
        snap_rows, snap_bytes = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(sa.func.length(note_snapshots.c.state)), 0),
            )
        ).one()
        biggest = conn.execute(
            sa.select(
                note_updates.c.note_id,
                sa.func.count().label("rows"),
                sa.func.sum(sa.func.length(note_updates.c.update)).label("bytes"),
            )
            .group_by(note_updates.c.note_id)
            .order_by(sa.literal_column("bytes").desc())
            .limit(top)
        ).all()
    out = Console(highlight=False, width=120)
    out.print(f"database: {db.driver} {db.config.display_url}")
    out.print(f"notes: {live_notes} ({deleted} deleted)")
    out.print(f"update log: {log_rows} rows, {human_bytes(int(log_bytes))}")
    out.print(f"snapshots and versions: {snap_rows} rows, {human_bytes(int(snap_bytes))}")
    table = Table("note", "log rows", "log bytes", title=f"biggest logs (top {top})")
    for row in biggest:
        table.add_row(row.note_id, str(row.rows), human_bytes(int(row.bytes or 0)))
    out.print(table)
    base = url or f"http://{settings.host}:{settings.port}"
    try:
        health = httpx.get(f"{base}/health", timeout=2).json()
        out.print(
            f"server at {base}: {health['rooms']} rooms live, {health['connections']} connections"
        )
    except (httpx.HTTPError, ValueError, KeyError):
        out.print(f"server at {base}: not reachable (live rooms unknown)")
