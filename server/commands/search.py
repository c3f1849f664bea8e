"""`coscribe search reindex`: rebuild the full-text index from the notes' stored content."""

from __future__ import annotations

import click
import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from crdt import document
from persistence import search
from persistence.schema import notes

from .base import UserError, current_database, user_errors

BATCH = 50


@click.group(epilog="Example: coscribe search reindex --all")
def search_group() -> None:
    """The full-text index behind GET /api/search."""


@search_group.command(
    epilog="Example: coscribe search reindex    Example: coscribe search reindex --all"
)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Rebuild the index of every note, not only those whose index entry is missing or behind.",
)
@user_errors
def reindex(everything: bool) -> None:
    """Index notes from their stored content (snapshot and update log).

    By default only notes whose index entry is missing or older than their stored edits (the
    server does the same on its own every COSCRIBE_SEARCH_CATCHUP_S); with --all every note.
    Safe while the server runs. Adds no events to the change feed.
    """
    out = Console(highlight=False)
    with current_database() as (settings, db):
        with db.read() as conn:
            query = sa.select(notes.c.id).where(notes.c.deleted_at.is_(None))
            if not everything:
                query = query.where(notes.c.id.in_(search.stale_notes(conn, limit=None)))
            note_ids = list(conn.execute(query.order_by(notes.c.id)).scalars())
        bar = Progress(
            TextColumn("indexing"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        refused = []
        with bar:
            task = bar.add_task("", total=len(note_ids))
            for start in range(0, len(note_ids), BATCH):
                # Short transactions: the server's own writes go on between them.
                with db.begin() as conn:
                    for note_id in note_ids[start : start + BATCH]:
                        try:
                            search.reindex_note(
                                conn,
                                note_id,
                                crdt_limits=settings.crdt_limits,
                                max_chars=settings.search_max_indexed_chars,
                            )
                        except (document.UpdateRefused, document.InvalidUpdate) as exc:
                            refused.append(f"{note_id}: {exc}")
                        bar.advance(task)
        out.print(f"indexed {len(note_ids) - len(refused)} notes")
        if refused:
            raise UserError(
                "not indexed (stored content refused; see coscribe notes check): "
                + "; ".join(refused[:10])
            )
