"""The `coscribe` command: a thin shell over library functions.

User errors print one line (`coscribe: error: ...`) and exit non-zero; no tracebacks.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click

# Command name -> "module:attribute" under server.commands. Modules are imported only for the
# command that runs: `coscribe serve` then never loads what only maintenance commands use
# (rich, the archive code, ...), which keeps the server's memory down.
COMMANDS = {
    "compact": "compact:compact",
    "db": "db:db",
    "export": "archive:export",
    "import": "archive:import_",
    "notes": "notes:notes",
    "prune": "prune:prune",
    "schedules": "schedules:schedules",
    "search": "search:search_group",
    "serve": "serve:serve",
    "stats": "stats:stats",
    "token": "token:token",
    "workspace": "workspace:workspace",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(f"server.commands.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: coscribe serve --port 8000",
)
@click.version_option(package_name="coscribe", prog_name="coscribe")
def cli() -> None:
    """coscribe: a collaborative notes server (Yjs over y-websocket, stored in SQLite or
    PostgreSQL). The database comes from DATABASE_URL, COSCRIBE_DB_DRIVER and
    COSCRIBE_SQLITE_PATH; see docs/configuration.md."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `coscribe` console script."""
    try:
        cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="coscribe",
            standalone_mode=False,
        )
    except click.UsageError as exc:
        # One line, like every other user error; the command's --help has the rest.
        command = exc.ctx.command_path if exc.ctx else "coscribe"
        click.echo(f"coscribe: error: {exc.format_message()} (see {command} --help)", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("coscribe: aborted", err=True)
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
