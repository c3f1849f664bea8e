"""What every command shares: one-line user errors and opening the database."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import click
from sqlalchemy import exc as sa_exc

from persistence import migrate
from persistence.config import ConfigError, DatabaseConfig
from persistence.engine import Database
from persistence.errors import StoreError

from ..settings import Settings, load_settings

EXIT_USER_ERROR = 2


class UserError(click.ClickException):
    """One line for the user, exit code 2."""

    exit_code = EXIT_USER_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"coscribe: error: {self.format_message()}", err=True)


def human_bytes(count: int) -> str:
    """1536 -> "1.5 KiB"; below 1 KiB, whole bytes."""
    if count < 1024:
        return f"{count} B"
    size, unit = count / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"


def open_database(config: DatabaseConfig | None) -> Database:
    assert config is not None, "Settings from load_settings() carry their database"
    if config.warning:
        click.echo(config.warning, err=True)
    return Database(config)


@contextlib.contextmanager
def current_database(
    settings: Settings | None = None, *, writes: bool = True
) -> Iterator[tuple[Settings, Database]]:
    """Settings (loaded unless given) and the database, refusing one whose schema is not
    current. `writes=False` for a dry run: nothing is added to the database meanwhile."""
    settings = settings or load_settings()
    with open_database(settings.database) as db:
        migrate.prepare(db, writes=writes)
        yield settings, db


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one-line user errors."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, StoreError) as exc:
            raise UserError(str(exc)) from None
        except sa_exc.OperationalError as exc:
            # Unreachable server, refused login, unreadable file: the driver's first line says
            # which; the URL is left out since the driver's message already names the host.
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise UserError(f"cannot use the database: {reason}") from None

    return wrapper
