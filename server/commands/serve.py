"""`coscribe serve`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import click

from persistence import migrate
from persistence.engine import Database

from .. import logs
from ..settings import Settings, current_names, load_settings
from .base import user_errors


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
    logs.configure(settings.log_format, settings.log_level)
    config = settings.database
    if config is not None and config.warning:
        say(settings, config.warning, logging.WARNING)
    db = Database(config)
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
        say(settings, f"coscribe: database {where}, schema {state.describe()}")
        if not settings.auth:
            say(
                settings,
                f"coscribe: WARNING: auth is OFF (COSCRIBE_AUTH=false). Anyone who can reach "
                f"{settings.host} can read and change every note. Only for a single machine.",
                logging.WARNING,
            )
        run(create_app(settings, db), settings, db)
    finally:
        db.close()


def say(settings: Settings, message: str, level: int = logging.INFO) -> None:
    """A start-up line for the operator: text on stderr (warnings in red), or with
    COSCRIBE_LOG_FORMAT=json a log record like every other line."""
    if settings.log_format == "json":
        logging.getLogger("coscribe").log(level, "%s", message.removeprefix("coscribe: "))
    elif level >= logging.WARNING:
        click.secho(message, err=True, fg="red", bold=True)
    else:
        click.echo(message, err=True)
