"""The coscribe command as operators run it: real processes, real databases."""

import httpx
import pytest

from persistence.config import MEMORY_WARNING
from tests.live_server import LiveServer, run_cli


def assert_one_line_error(result, *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("coscribe: error: ")
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


def test_serve_starts_on_default_sqlite_and_answers_health(tmp_path):
    with LiveServer({}, tmp_path) as server:
        response = httpx.get(f"{server.url}/health").json()
        assert (response["status"], response["database"]["driver"], response["rooms"]) == (
            "ok",
            "sqlite",
            0,
        )
        assert response["live"] and response["ready"]
    assert (tmp_path / ".coscribe" / "coscribe.sqlite").is_file()
    assert "schema up to date" in server.log()


def test_serve_on_memory_warns_that_nothing_is_kept(tmp_path):
    with LiveServer({"COSCRIBE_DB_DRIVER": "memory"}, tmp_path) as server:
        assert httpx.get(f"{server.url}/health").json()["database"]["driver"] == "memory"
    assert MEMORY_WARNING in server.log()
    assert not (tmp_path / ".coscribe").exists()


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"DATABASE_URL": "mysql://root@localhost/db"}, ["DATABASE_URL", "mysql"]),
        ({"COSCRIBE_DB_DRIVER": "postgres"}, ["COSCRIBE_DB_DRIVER", "DATABASE_URL"]),
        ({"COSCRIBE_SQLITE_PATH": "/proc/none/x.sqlite"}, ["COSCRIBE_SQLITE_PATH"]),
        ({"COSCRIBE_PORT": "eighty"}, ["COSCRIBE_PORT", "whole number"]),
        ({"COSCRIBE_LOG_LEVEL": "loud"}, ["COSCRIBE_LOG_LEVEL"]),
    ],
)
def test_bad_configuration_stops_serve_with_one_line(tmp_path, env, words):
    assert_one_line_error(run_cli(["serve"], env, tmp_path), *words)


def test_db_migrate_and_status_on_sqlite(tmp_path):
    env = {"COSCRIBE_SQLITE_PATH": str(tmp_path / "ops.sqlite")}
    status = run_cli(["db", "status"], env, tmp_path)
    assert status.returncode == 1
    assert "not migrated" in status.stdout
    migrated = run_cli(["db", "migrate"], env, tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "migrated empty ->" in migrated.stdout
    again = run_cli(["db", "migrate"], env, tmp_path)
    assert "already up to date" in again.stdout
    status = run_cli(["db", "status"], env, tmp_path)
    assert status.returncode == 0
    assert "up to date" in status.stdout


@pytest.mark.postgres
def test_postgres_serve_refuses_until_migrated(tmp_path, postgres_schemas):
    env = {"DATABASE_URL": postgres_schemas.new()}
    refused = run_cli(["serve"], env, tmp_path)
    assert_one_line_error(refused, "coscribe db migrate", "not migrated")

    status = run_cli(["db", "status"], env, tmp_path)
    assert status.returncode == 1 and "not migrated" in status.stdout
    migrated = run_cli(["db", "migrate"], env, tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    status = run_cli(["db", "status"], env, tmp_path)
    assert status.returncode == 0 and "postgres" in status.stdout
    assert "secret" not in status.stdout

    with LiveServer(env, tmp_path) as server:
        assert httpx.get(f"{server.url}/health").json()["database"]["driver"] == "postgres"


def test_help_has_an_example_for_every_command(tmp_path):
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["db", "migrate", "--help"],
        ["db", "status", "--help"],
    ):
        result = run_cli(args, {}, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Example: " in result.stdout, args


def test_unreachable_postgres_is_a_one_line_error(tmp_path):
    env = {"DATABASE_URL": "postgresql://postgres:hunter2@127.0.0.1:1/none"}
    for command in (["db", "status"], ["db", "migrate"], ["serve"]):
        result = run_cli(command, env, tmp_path)
        assert_one_line_error(result, "cannot use the database")
        assert "hunter2" not in result.stderr


def test_unknown_command_is_a_one_line_error(tmp_path):
    result = run_cli(["frobnicate"], {}, tmp_path)
    assert result.returncode == 2
    assert "No such command" in result.stderr
    assert "Traceback" not in result.stderr
