"""The docs say what the code does: every setting and database variable is documented."""

import re
from pathlib import Path

import click

from persistence import config
from server.cli import cli
from server.settings import REMOVED, Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "configuration.md"
# Variables for the test suite itself (README), not for the server.
TEST_ONLY = ("COSCRIBE_TEST_",)


def _row(text: str, variable: str) -> str:
    row = re.search(rf"^\| `{variable}` \|.*$", text, re.MULTILINE)
    assert row, f"{variable} missing from {DOCS.name}"
    return row.group(0)


def test_every_setting_is_documented_with_its_default_and_help():
    text = DOCS.read_text()
    for field in Settings.fields():
        row = _row(text, Settings.env_name(field.name))
        default = str(field.default).lower() if isinstance(field.default, bool) else field.default
        assert f"`{default}`" in row, f"{field.name}: default not documented"
        assert field.metadata["help"] in row, f"{field.name}: help differs from the code"


def test_every_deprecated_name_is_documented_with_its_replacement():
    text = DOCS.read_text()
    for field in Settings.fields():
        old = field.metadata.get("deprecated")
        if old:
            assert f"`{old}`" in text, f"{old} (deprecated) missing from {DOCS.name}"
            line = next(line for line in text.splitlines() if f"`{old}`" in line)
            assert Settings.env_name(field.name) in line, f"{old}: replacement not named"


def test_every_database_variable_is_documented_with_its_default_and_help():
    text = DOCS.read_text()
    code = (ROOT / "persistence" / "config.py").read_text()
    in_code = set(re.findall(r'"((?:COSCRIBE_[A-Z_]+)|DATABASE_URL|REDIS_URL)"', code))
    assert in_code == set(config.VARIABLES), "every variable read must be in config.VARIABLES"
    for variable, (default, help) in config.VARIABLES.items():
        row = _row(text, variable)
        shown = "unset" if default == "unset" else f"`{default}`"
        assert f"| {shown} |" in row, f"{variable}: default not documented"
        assert help in row, f"{variable}: help differs from the code"


def test_no_document_names_a_variable_the_code_does_not_read():
    known = {Settings.env_name(field.name) for field in Settings.fields()}
    known |= {
        field.metadata["deprecated"]
        for field in Settings.fields()
        if "deprecated" in field.metadata
    }
    known |= set(config.VARIABLES)
    known |= set(REMOVED)  # documented as removed, and start-up says so
    pages = [*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md")]
    for page in pages:
        for variable in set(re.findall(r"COSCRIBE_[A-Z_]*[A-Z]", page.read_text())):
            if not variable.startswith(TEST_ONLY):
                assert variable in known, f"{page.name} names {variable}, which nothing reads"


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
