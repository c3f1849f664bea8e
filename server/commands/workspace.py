"""`coscribe workspace create | list | rename | delete`."""

from __future__ import annotations

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from persistence import schema
from persistence.paging import MAX_LIMIT
from persistence.stores import workspaces

from .base import UserError, current_database, user_errors


@click.group(epilog="Example: coscribe workspace create team --name 'The team'")
def workspace() -> None:
    """Workspaces: they own notes, agents, tasks and the rest. Named by id or slug."""


@workspace.command(epilog="Example: coscribe workspace create research --name 'Research'")
@click.argument("slug")
@click.option("--name", default=None, help="Display name [default: the slug].")
@click.option("--description", default="", help="What the workspace is for.")
@user_errors
def create(slug: str, name: str | None, description: str) -> None:
    """Create a workspace with this slug (a-z, 0-9 and '-'), and print its id."""
    with current_database() as (_settings, db), db.begin() as conn:
        row = workspaces.create(conn, slug, name, description=description)
    click.echo(f"workspace {row['slug']} created", err=True)
    click.echo(row["id"])


@workspace.command("list", epilog="Example: coscribe workspace list")
@user_errors
def list_workspaces() -> None:
    """List workspaces: id, slug, name, notes and tokens in force."""
    with current_database() as (_settings, db), db.read() as conn:
        rows, cursor = [], None
        while True:
            page = workspaces.list_workspaces(conn, limit=MAX_LIMIT, cursor=cursor)
            rows += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        note_counts = dict(
            conn.execute(
                sa.select(schema.notes.c.workspace_id, sa.func.count())
                .where(schema.notes.c.deleted_at.is_(None))
                .group_by(schema.notes.c.workspace_id)
            ).all()
        )
    table = Table("id", "slug", "name", "notes", "created")
    for row in sorted(rows, key=lambda r: r["created_at"]):
        table.add_row(
            row["id"],
            row["slug"],
            row["name"],
            str(note_counts.get(row["id"], 0)),
            f"{row['created_at']:%Y-%m-%d %H:%M}",
        )
    Console(width=160).print(table)


@workspace.command(epilog="Example: coscribe workspace rename team --slug core --name 'Core'")
@click.argument("workspace_name", metavar="WORKSPACE")
@click.option("--slug", default=None, help="The new slug.")
@click.option("--name", default=None, help="The new display name.")
@user_errors
def rename(workspace_name: str, slug: str | None, name: str | None) -> None:
    """Change a workspace's slug, display name or both. Its id (and its tokens) stay."""
    if slug is None and name is None:
        raise UserError("give --slug, --name or both")
    changes = {key: value for key, value in (("slug", slug), ("name", name)) if value is not None}
    with current_database() as (_settings, db), db.begin() as conn:
        row = workspaces.update(conn, workspaces.resolve(conn, workspace_name), **changes)
    click.echo(f"workspace {row['id']}: slug {row['slug']}, name {row['name']!r}")


@workspace.command(epilog="Example: coscribe workspace delete research --yes")
@click.argument("workspace_name", metavar="WORKSPACE")
@click.option("--yes", is_flag=True, help="Do it without asking (scripts).")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; change nothing.")
@user_errors
def delete(workspace_name: str, yes: bool, dry_run: bool) -> None:
    """Delete a workspace and everything it owns: notes, agents, tasks, tokens, ..."""
    with current_database(writes=not dry_run) as (_settings, db):
        with db.read() as conn:
            workspace_id = workspaces.resolve(conn, workspace_name)
            row = workspaces.get(conn, workspace_id)
            owned = conn.execute(
                sa.select(sa.func.count()).where(schema.notes.c.workspace_id == workspace_id)
            ).scalar_one()
        what = f"workspace {row['slug']} ({workspace_id}) and its {owned} notes"
        if dry_run:
            click.echo(f"would delete {what} (dry run)")
            return
        if not yes:
            click.confirm(f"Delete {what}, for good?", abort=True, err=True)
        with db.begin() as conn:
            workspaces.delete(conn, workspace_id)
    if workspace_id == workspaces.DEFAULT_ID:
        click.echo("the default workspace is created again, empty, on the next start", err=True)
    click.echo(f"deleted {what}")
