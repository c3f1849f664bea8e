"""`coscribe stats`: what the database holds, and what a running server has live."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from persistence.schema import note_snapshots, note_updates, notes, workspaces

from .. import listening
from .base import UserError, current_database, human_bytes, user_errors


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
    help="Where the server runs, for live rooms [default: where a server on this SQLite "
    "database says it listens, else COSCRIBE_HOST/PORT].",
)
@user_errors
def stats(top: int, url: str | None) -> None:
    """Notes, update log and snapshot sizes, the biggest notes, and live rooms."""
    if url is not None and not url.startswith(("http://", "https://")):
        raise UserError(f"--url: expected an http:// or https:// URL, got {url!r}")
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
        logs = (
            sa.select(
                note_updates.c.note_id,
                sa.func.count().label("rows"),
                sa.func.sum(sa.func.length(note_updates.c.update)).label("bytes"),
            )
            .group_by(note_updates.c.note_id)
            .order_by(sa.literal_column("bytes").desc())
            .limit(top)
            .subquery()
        )
        biggest = conn.execute(
            sa.select(logs, notes.c.title, workspaces.c.slug)
            .join(notes, notes.c.id == logs.c.note_id)
            .join(workspaces, workspaces.c.id == notes.c.workspace_id)
            .order_by(logs.c.bytes.desc(), logs.c.note_id)
        ).all()
    out = Console(highlight=False, width=120)
    out.print(f"database: {db.driver} {db.config.display_url}")
    out.print(f"notes: {live_notes} ({deleted} deleted)")
    out.print(f"update log: {log_rows} rows, {human_bytes(int(log_bytes))}")
    out.print(f"snapshots and versions: {snap_rows} rows, {human_bytes(int(snap_bytes))}")
    table = Table(
        "note", "title", "workspace", "log rows", "log bytes", title=f"biggest logs (top {top})"
    )
    for row in biggest:
        table.add_row(
            row.note_id, row.title or "-", row.slug, str(row.rows), human_bytes(int(row.bytes or 0))
        )
    out.print(table)
    base = (
        url
        or listening.recorded_url(settings.database)
        or listening.local_url(settings.host, settings.port)
    ).rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
            health = json.load(response)
        out.print(
            f"server at {base}: {health['rooms']} rooms live, {health['connections']} connections"
        )
    except (OSError, ValueError, KeyError, TypeError):
        # OSError covers urllib's URLError and HTTPError and a refused connection.
        out.print(f"server at {base}: not reachable (live rooms unknown; see --url)")
