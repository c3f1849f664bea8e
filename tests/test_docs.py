"""The docs say what the code does: every setting and database variable is documented."""

import re
from pathlib import Path

import click

from server.cli import cli
from server.settings import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
DATABASE_VARIABLES = [
    "DATABASE_URL",
    "COSCRIBE_DB_DRIVER",
    "COSCRIBE_SQLITE_PATH",
    "COSCRIBE_DB_POOL_SIZE",
    "COSCRIBE_SQLITE_BUSY_TIMEOUT_MS",
    "REDIS_URL",
]


def test_every_setting_is_documented_with_its_default_and_help():
    text = DOCS.read_text()
    for field in Settings.fields():
        variable = Settings.env_name(field.name)
        row = re.search(rf"^\| `{variable}` \|.*$", text, re.MULTILINE)
        assert row, f"{variable} missing from {DOCS.name}"
        default = str(field.default).lower() if isinstance(field.default, bool) else field.default
        assert f"`{default}`" in row.group(0), f"{variable}: default not documented"
        assert field.metadata["help"] in row.group(0), f"{variable}: help differs from the code"


def test_every_database_variable_is_documented():
    text = DOCS.read_text()
    code = (Path(__file__).resolve().parent.parent / "persistence" / "config.py").read_text()
    in_code = set(re.findall(r'"((?:COSCRIBE_[A-Z_]+)|DATABASE_URL|REDIS_URL)"', code))
    assert in_code == set(DATABASE_VARIABLES), "update DATABASE_VARIABLES and the docs"
    for variable in DATABASE_VARIABLES:
        assert f"| `{variable}` |" in text, f"{variable} missing from {DOCS.name}"


def _commands(command, path):
    yield path, command
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in command.list_commands(context):
            yield from _commands(command.get_command(context, name), [*path, name])


def test_every_command_and_option_is_documented_with_an_example():
    text = (DOCS.parent / "cli.md").read_text()
    for path, command in _commands(cli, ["coscribe"]):
        name = " ".join(path)
        if len(path) > 1:
            assert f"`{name}" in text, f"{name} is missing from docs/cli.md"
        assert command.epilog and "Example: " in command.epilog, f"{name} --help has no example"
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "version":
                for flag in param.opts:
                    assert flag in text, f"{name} {flag} is missing from docs/cli.md"
