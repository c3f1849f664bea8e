"""`coscribe db migrate | status`."""

from __future__ import annotations

import sys

import click

from persistence import migrate

from ..settings import load_settings
from .base import open_database, user_errors


@click.group(epilog="Example: coscribe db migrate && coscribe db status")
def db() -> None:
    """Database schema: migrate and status."""


@db.command(
    "migrate", epilog="Example: DATABASE_URL=postgresql://app@db/coscribe coscribe db migrate"
)
@user_errors
def db_migrate() -> None:
    """Migrate the database schema to the current version."""
    config = load_settings().database
    with open_database(config) as database:
        before = migrate.status(database)
        after = migrate.upgrade(database)
        migrate.ensure_default_workspace(database)
    if before.current == after.current:
        click.echo(f"{config.driver}: already {after.describe()}")
    else:
        click.echo(f"{config.driver}: migrated {before.current or 'empty'} -> {after.current}")


@db.command("status", epilog="Example: coscribe db status")
@user_errors
def db_status() -> None:
    """Show the database and whether its schema is current. Exits 1 when it is not."""
    config = load_settings().database
    with open_database(config) as database:
        state = migrate.status(database)
    click.echo(f"database: {config.driver} {config.display_url}")
    click.echo(f"schema: {state.describe()}")
    if not state.up_to_date:
        sys.exit(1)
