"""`coscribe prune` as operators run it: a real process on a SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime

import pycrdt
import sqlalchemy as sa

from persistence import migrate, notes, update_log, versions
from persistence.config import database_config_from_env
from persistence.engine import Database
from persistence.schema import background_tasks, metadata, note_snapshots
from persistence.stores import background_tasks as jobs
from persistence.stores import workspaces
from tests.live_server import run_cli

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def make_database(path) -> None:
    """Old versions, a long-deleted note and 25 old finished jobs, plus things to keep."""
    db = Database(database_config_from_env({"COSCRIBE_SQLITE_PATH": str(path)}))
    try:
        migrate.upgrade(db)
        doc = pycrdt.Doc(client_id=5)
        text = doc.get("content", type=pycrdt.Text)
        captured: list[bytes] = []
        doc.observe(lambda event: captured.append(event.update))
        with db.begin() as conn:
            workspaces.create(conn, "ws", id="ws")
            workspaces.create(conn, "odd", id="odd", settings={"retention": {"job_seconds": -1}})
            notes.create_note(conn, workspace_id="ws", note_id="keep", now=LONG_AGO)
            for word in ("one ", "two ", "three"):
                text += word
                update_log.append_update(conn, "keep", captured.pop(), now=LONG_AGO)
                versions.create_version(conn, "keep", now=LONG_AGO)
            notes.create_note(conn, workspace_id="ws", note_id="trash", now=LONG_AGO)
            notes.delete_note(conn, "trash", now=LONG_AGO)
            for n in range(25):
                job = jobs.enqueue(conn, f"old{n}", workspace_id="ws", now=LONG_AGO)
                jobs.cancel(conn, job["id"], now=LONG_AGO)
            recent = jobs.enqueue(conn, "recent", workspace_id="ws")
            jobs.cancel(conn, recent["id"])
            odd = jobs.enqueue(conn, "odd", workspace_id="odd", now=LONG_AGO)
            jobs.cancel(conn, odd["id"], now=LONG_AGO)
    finally:
        db.close()


def dump(path) -> dict[str, list]:
    db = Database(database_config_from_env({"COSCRIBE_SQLITE_PATH": str(path)}))
    try:
        with db.begin() as conn:
            return {
                table.name: sorted(map(repr, conn.execute(sa.select(table))))
                for table in metadata.sorted_tables
            }
    finally:
        db.close()


def test_prune_dry_run_then_for_real(tmp_path):
    path = tmp_path / "ops.sqlite"
    make_database(path)
    env = {"COSCRIBE_SQLITE_PATH": str(path)}
    before = dump(path)
    assert len(before[note_snapshots.name]) == 3

    dry = run_cli(["prune", "--dry-run"], env, tmp_path)
    assert dry.returncode == 1, dry.stderr  # the "odd" workspace's override is invalid
    assert dump(path) == before
    out = dry.stdout.splitlines()
    assert out[0] == (
        "retention: versions 90 days, deleted notes 30 days, finished jobs 7 days "
        "(workspaces may override)"
    )
    assert out[1].startswith("versions to remove: 2 (") and out[1].endswith(": 1, 2")
    assert out[2] == "deleted notes to purge: 1 (0 B): trash"
    assert out[3].startswith("finished jobs to remove: 25 (")
    assert out[3].endswith(", ... and 15 more")
    assert out[4] == "dry run: nothing was changed"
    warnings = dry.stderr.strip().splitlines()
    assert warnings == [
        "coscribe: warning: workspace 'odd': retention.job_seconds: must be 0 (keep forever) "
        "or more, got -1; its finished jobs are kept until it is fixed",
        "coscribe: error: 1 invalid workspace retention override, listed above: "
        "what they govern was left alone",
    ]

    real = run_cli(["prune"], env, tmp_path)
    assert real.returncode == 1, real.stderr
    assert real.stdout.splitlines()[1:4] == [
        line.replace(" to remove", " removed").replace(" to purge", " purged") for line in out[1:4]
    ]
    assert "dry run" not in real.stdout
    after = dump(path)
    assert len(after[note_snapshots.name]) == 1
    assert len(after[background_tasks.name]) == 2  # the recent job and the odd workspace's
    assert len(after["notes"]) == 1

    again = run_cli(["prune"], env, tmp_path)
    assert again.stdout.splitlines()[1:4] == [
        "versions removed: 0 (0 B)",
        "deleted notes purged: 0 (0 B)",
        "finished jobs removed: 0 (0 B)",
    ]


def test_prune_with_nothing_to_do_exits_0_and_honours_the_variables(tmp_path):
    env = {
        "COSCRIBE_SQLITE_PATH": str(tmp_path / "empty.sqlite"),
        "COSCRIBE_VERSION_RETENTION_S": "0",
        "COSCRIBE_JOB_RETENTION_S": "3600",
    }
    result = run_cli(["prune"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(
        "retention: versions forever, deleted notes 30 days, finished jobs 3600 s"
    )
    assert result.stderr == ""


def test_a_bad_variable_is_one_line_naming_it(tmp_path):
    env = {
        "COSCRIBE_SQLITE_PATH": str(tmp_path / "x.sqlite"),
        "COSCRIBE_DELETED_NOTE_RETENTION_DEFAULT_SECONDS": "30d",
    }
    result = run_cli(["prune", "--dry-run"], env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith(
        "coscribe: error: COSCRIBE_DELETED_NOTE_RETENTION_DEFAULT_SECONDS: expected a whole number"
    )
    assert not (tmp_path / "x.sqlite").exists()


def test_a_deprecated_variable_still_works_and_says_so_once(tmp_path):
    env = {
        "COSCRIBE_SQLITE_PATH": str(tmp_path / "old.sqlite"),
        "COSCRIBE_JOB_RETENTION_DEFAULT_SECONDS": "3600",
    }
    result = run_cli(["prune", "--dry-run"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "finished jobs 3600 s" in result.stdout.splitlines()[0]
    assert result.stderr.splitlines() == [
        "COSCRIBE_JOB_RETENTION_DEFAULT_SECONDS is deprecated: "
        "rename it COSCRIBE_JOB_RETENTION_S (same value)"
    ]


def test_help_has_an_example(tmp_path):
    result = run_cli(["prune", "--help"], {}, tmp_path)
    assert result.returncode == 0
    assert "--dry-run" in result.stdout and "Example: coscribe prune" in result.stdout
    assert "prune" in run_cli(["--help"], {}, tmp_path).stdout
