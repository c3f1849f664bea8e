"""`coscribe search reindex` on a real SQLite file: stale notes by default, every one with
--all, and the index answers afterwards."""

from __future__ import annotations

import pycrdt

from crdt import document
from persistence import migrate, notes, search, update_log
from persistence.config import database_config_from_env
from persistence.engine import Database
from persistence.stores import workspaces
from tests.live_server import run_cli


def test_reindex_indexes_stale_notes_then_all(tmp_path):
    env = {"COSCRIBE_SQLITE_PATH": str(tmp_path / "notes.sqlite")}
    db = Database(database_config_from_env(env))
    migrate.upgrade(db)
    with db.begin() as conn:
        workspaces.ensure_default(conn)
        for i, words in enumerate(["Grüße aus Köln", "привет мир", "静かな湖"]):
            notes.create_note(conn, workspace_id="default", note_id=f"n{i}")
            doc = document.new_doc()
            doc.get(document.BODY, type=pycrdt.Text).insert(0, words)
            update_log.append_update(conn, f"n{i}", doc.get_update())
    db.close()

    first = run_cli(["search", "reindex"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "indexed 3 notes" in first.stdout
    again = run_cli(["search", "reindex"], env, tmp_path)
    assert "indexed 0 notes" in again.stdout  # nothing is stale any more
    every = run_cli(["search", "reindex", "--all"], env, tmp_path)
    assert "indexed 3 notes" in every.stdout

    db = Database(database_config_from_env(env))
    with db.read() as conn:
        for query, note_id in (("grusse koln", "n0"), ("МИР", "n1"), ("湖", "n2")):
            hits = search.search(conn, query).items
            assert [hit["note_id"] for hit in hits] == [note_id], query
    db.close()
