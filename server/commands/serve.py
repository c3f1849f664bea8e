"""`coscribe serve`."""

from __future__ import annotations

import os
import subprocess
import sys

import click

from persistence import migrate

from ..settings import Settings, current_names, load_settings
from .base import open_database, user_errors


@click.command(epilog="Example: COSCRIBE_SQLITE_PATH=/var/lib/coscribe/notes.sqlite coscribe serve")
@click.option(
    "--host", default=None, help=f"Interface to listen on [env {Settings.env_name('host')}]."
)
@click.option(
    "--port", type=int, default=None, help=f"Port to listen on [env {Settings.env_name('port')}]."
)
@click.option(
    "--log-level",
    default=None,
    help=f"Log level [env {Settings.env_name('log_level')}].",
)
@user_errors
def serve(host: str | None, port: int | None, log_level: str | None) -> None:
    """Run the server. SQLite and memory databases are migrated on start; PostgreSQL must
    already be at the current schema (run `coscribe db migrate`)."""
    from ..app import create_app
    from ..runner import run

    settings = load_settings(host=host, port=port, log_level=log_level)
    config = settings.database
    db = open_database(config)
    try:
        if config.driver == "sqlite" and not migrate.status(db).up_to_date:
            # Migrate in a child process: Alembic then never loads into the server itself.
            child = subprocess.run(
                [sys.executable, "-m", "server.cli", "db", "migrate"],
                env=current_names(os.environ),  # deprecation lines were shown once already
            )
            if child.returncode != 0:
                sys.exit(child.returncode)  # the child printed its one-line error
        state = migrate.prepare(db)
        where = f"{config.driver} at {config.display_url}"
        click.echo(f"coscribe: database {where}, schema {state.describe()}", err=True)
        if not settings.auth:
            click.secho(
                f"coscribe: WARNING: auth is OFF (COSCRIBE_AUTH=false). Anyone who can reach "
                f"{settings.host} can read and change every note. Only for a single machine.",
                err=True,
                fg="red",
                bold=True,
            )
        run(create_app(settings, db), settings, db)
    finally:
        db.close()
