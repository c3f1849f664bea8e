"""`coscribe export` and `coscribe import` as operators run them: real processes, real databases.

The main path: a SQLite database seeded through the stores and the notes API (notes with
multi-client histories, versions, a log tail, a soft-deleted note, task dependencies,
schedules, jobs), exported, and imported into an empty, freshly migrated PostgreSQL; then
every row of every table and every note is compared.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from persistence import migrate
from persistence.config import database_config_from_env
from persistence.engine import Database
from tests.live_server import run_cli
from tests.persistence.test_archive import (
    assert_imported,
    entities,
    everything,
    note_states,
    seed,
    versions,
)
from tests.server.test_cli import assert_one_line_error


def sqlite_env(path: Path) -> dict[str, str]:
    return {"COSCRIBE_SQLITE_PATH": str(path)}


@pytest.fixture
def seeded(tmp_path) -> Path:
    """A SQLite database file holding the full seed."""
    path = tmp_path / "source.sqlite"
    with Database(database_config_from_env(sqlite_env(path))) as db:
        migrate.upgrade(db)
        seed(db)
    return path


def open_db(env: dict[str, str]) -> Database:
    return Database(database_config_from_env(env))


def export(tmp_path: Path, source: Path, *extra: str, name: str = "backup.gz"):
    return run_cli(["export", *extra, str(tmp_path / name)], sqlite_env(source), tmp_path)


@pytest.mark.postgres
def test_sqlite_export_imports_into_an_empty_postgres_identically(
    tmp_path, seeded, postgres_schemas
):
    exported = export(tmp_path, seeded)
    assert exported.returncode == 0, exported.stderr
    assert exported.stderr == ""  # no progress bar when stderr is not a terminal
    archive_file = tmp_path / "backup.gz"
    assert f"exported sqlite to {archive_file}" in exported.stdout
    assert "5 notes, 6 versions" in exported.stdout
    assert "(1 deleted)" in exported.stdout
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    target = {"DATABASE_URL": postgres_schemas.new()}
    migrated = run_cli(["db", "migrate"], target, tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    imported = run_cli(["import", str(archive_file)], target, tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert imported.stderr == ""
    assert "into postgres: " in imported.stdout
    assert "5 notes, 6 versions added" in imported.stdout

    with open_db(sqlite_env(seeded)) as source, open_db(target) as copy:
        assert_imported(source, copy)  # every row of every table, every note and version
        assert entities(copy) == entities(source)
        assert note_states(copy) == note_states(source)
        after_import = everything(copy)

        # Importing again is refused in one line and changes nothing...
        again = run_cli(["import", str(archive_file)], target, tmp_path)
        assert_one_line_error(again, "not empty", "--merge")
        assert everything(copy) == after_import

        # ... unless merged, which skips every row and merges notes to no change.
        merged = run_cli(["import", "--merge", str(archive_file)], target, tmp_path)
        assert merged.returncode == 0, merged.stderr
        assert "0 rows, 0 notes, 0 versions added" in merged.stdout
        assert "5 notes were there already (0 notes changed by merging)" in merged.stdout
        assert everything(copy) == after_import

        # The copy exports like the original (its versions hold the two log tails as well).
        copied = run_cli(["export", str(tmp_path / "copy.gz")], target, tmp_path)
        assert copied.returncode == 0, copied.stderr
        assert "5 notes, 8 versions" in copied.stdout
        assert sum(map(len, versions(copy).values())) == 8


@pytest.mark.postgres
def test_import_into_an_unmigrated_postgres_is_one_line(tmp_path, seeded, postgres_schemas):
    assert export(tmp_path, seeded).returncode == 0
    target = {"DATABASE_URL": postgres_schemas.new()}
    refused = run_cli(["import", str(tmp_path / "backup.gz")], target, tmp_path)
    assert_one_line_error(refused, "not migrated", "coscribe db migrate")
    status = run_cli(["db", "status"], target, tmp_path)
    assert status.returncode == 1 and "not migrated" in status.stdout


def test_export_refuses_to_overwrite_without_force(tmp_path, seeded):
    assert export(tmp_path, seeded).returncode == 0
    archive_file = tmp_path / "backup.gz"
    archive_file.write_bytes(b"keep me")
    refused = export(tmp_path, seeded)
    assert_one_line_error(refused, "already exists", "--force")
    assert archive_file.read_bytes() == b"keep me"
    forced = export(tmp_path, seeded, "--force")
    assert forced.returncode == 0, forced.stderr
    with gzip.open(archive_file, "rt") as f:
        assert json.loads(f.readline())["format"] == "coscribe-archive"


def test_export_of_a_missing_sqlite_database_is_one_line(tmp_path):
    result = export(tmp_path, tmp_path / "nothing-here.sqlite")
    assert_one_line_error(result, "no database at", "nothing to export")
    assert not (tmp_path / "nothing-here.sqlite").exists()
    assert not (tmp_path / "backup.gz").exists()


def test_sqlite_to_sqlite_and_errors_leave_the_target_unchanged(tmp_path, seeded):
    assert export(tmp_path, seeded).returncode == 0
    good = tmp_path / "backup.gz"
    target_path = tmp_path / "target.sqlite"
    target = sqlite_env(target_path)

    not_archive = tmp_path / "notes.txt"
    not_archive.write_text("just some text\n")
    newer = tmp_path / "newer.gz"
    with gzip.open(good, "rt") as f:
        lines = f.readlines()
    header = json.loads(lines[0])
    header["version"] = 2
    with gzip.open(newer, "wt") as f:
        f.write(json.dumps(header) + "\n" + "".join(lines[1:]))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])

    cases = [
        (tmp_path / "missing.gz", ["not found"]),
        (not_archive, ["is not a coscribe archive", "not gzip"]),
        (newer, ["archive format 2 is newer than this coscribe supports (1): upgrade coscribe"]),
        (cut, ["truncated"]),
    ]
    for path, words in cases:
        result = run_cli(["import", str(path)], target, tmp_path)
        assert_one_line_error(result, *words)
    with open_db(target) as db:
        # Migrated by the CLI, still empty but for the default workspace every migration
        # makes, which an import replaces with the archive's rows.
        found = {name: rows for name, rows in entities(db).items() if rows}
        assert [row["id"] for row in found.pop("workspaces")] == ["default"]
        assert found == {}

    imported = run_cli(["import", str(good)], target, tmp_path)
    assert imported.returncode == 0, imported.stderr
    with open_db(sqlite_env(seeded)) as source, open_db(target) as copy:
        assert_imported(source, copy)
        after_import = everything(copy)
    # The header is checked first, then that the target is empty (without --merge).
    for path, words in [*cases[:3], (cut, ["not empty"]), (good, ["not empty", "--merge"])]:
        result = run_cli(["import", str(path)], target, tmp_path)
        assert_one_line_error(result, *words)
    for path, words in cases[2:]:
        result = run_cli(["import", "--merge", str(path)], target, tmp_path)
        assert_one_line_error(result, *words)
    with open_db(target) as copy:
        assert everything(copy) == after_import


def test_export_and_import_have_help_with_an_example(tmp_path):
    for command in ("export", "import"):
        result = run_cli([command, "--help"], {}, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Example: " in result.stdout
        assert "FILE" in result.stdout
    assert "--force" in run_cli(["export", "--help"], {}, tmp_path).stdout
    assert "--merge" in run_cli(["import", "--help"], {}, tmp_path).stdout
