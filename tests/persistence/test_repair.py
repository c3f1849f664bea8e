"""persistence.repair: notes stored with content the update checks refuse (as a version
without the checks stored it) are found, their refused pieces saved raw, and rebuilt from the
rest. pycrdt reads none of the refused bytes (a 40,000 deep value would crash it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from crdt import document
from persistence import compaction, notes, repair, update_log, versions
from persistence.errors import InvalidError
from persistence.schema import note_snapshots, note_updates
from tests.crdt import yjs_v1 as y
from tests.persistence.test_notes import add_workspace, body, count_rows
from tests.writer import Writer

POISON = y.update([(5, 0, [y.item(y.ANY, y.any_content([y.nested_any(40_000)]), root="evil")])])


@pytest.fixture
def note_id(db) -> str:
    with db.begin() as conn:
        add_workspace(conn)
        return notes.create_note(conn, workspace_id="ws", note_id="n1")["id"]


def poison_the_log(db, note_id: str) -> int:
    """Append the refused update as an old version would have: straight into the log."""
    with db.begin() as conn:
        seq = conn.execute(sa.select(sa.func.max(note_updates.c.seq))).scalar_one() or 0
        conn.execute(
            sa.insert(note_updates).values(
                note_id=note_id, seq=seq + 1, update=POISON, created_at=datetime.now(UTC)
            )
        )
        conn.execute(
            sa.update(notes.notes).where(notes.notes.c.id == note_id).values(last_seq=seq + 1)
        )
    return seq + 1


def test_a_refused_update_is_saved_and_the_note_rebuilt_from_the_rest(db, note_id, tmp_path):
    writer = Writer()
    with db.begin() as conn:
        update_log.append_updates(conn, note_id, [writer.type("kept")])
        compaction.compact_note_in(conn, note_id)
        update_log.append_updates(conn, note_id, [writer.type(" and more")])
    seq = poison_the_log(db, note_id)
    with db.begin() as conn:
        update_log.append_updates(conn, note_id, [writer.type(" after")])
    with db.begin() as conn, pytest.raises(document.UpdateRefused, match="nested more than"):
        update_log.load_doc(conn, note_id)

    with db.begin() as conn:
        found = repair.inspect_note(conn, note_id)
    assert [piece.name for piece in found.refused] == [f"update-{seq}"]
    assert [piece.kind for piece in found.kept] == ["snapshot", "update", "update"]

    out = tmp_path / "saved"
    with db.begin() as conn:
        dry = repair.repair_note(conn, note_id, out, dry_run=True)
    assert dry.dry_run and not out.exists()
    with db.begin() as conn:
        assert repair.inspect_note(conn, note_id).refused  # nothing changed

    with db.begin() as conn:
        done = repair.repair_note(conn, note_id, out)
    assert (out / f"update-{seq}.bin").read_bytes() == POISON
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["note_id"] == note_id and manifest["refused"][0]["id"] == seq
    assert done.through_seq == seq + 1
    assert body(db, note_id) == "kept and more after"
    assert count_rows(db, note_updates, note_id) == 0
    with db.begin() as conn:
        assert repair.inspect_note(conn, note_id).ok
        update_log.append_updates(conn, note_id, [writer.type("!")])  # it takes new edits
    assert body(db, note_id) == "kept and more after!"


def test_a_refused_snapshot_falls_back_to_the_newest_one_that_passes(db, note_id, tmp_path):
    writer = Writer()
    with db.begin() as conn:
        update_log.append_updates(conn, note_id, [writer.type("version one")])
        versions.create_version(conn, note_id, label="good")
        bad = conn.execute(
            sa.insert(note_snapshots)
            .values(
                note_id=note_id,
                through_seq=1,
                state=POISON,
                state_vector=b"\x00",
                kind="compaction",
                created_at=datetime.now(UTC),
            )
            .returning(note_snapshots.c.id)
        ).scalar_one()
        update_log.append_updates(conn, note_id, [writer.type(", then more")])
    with db.begin() as conn:
        done = repair.repair_note(conn, note_id, tmp_path / "out")
    assert [piece.name for piece in done.inspection.refused] == [f"snapshot-{bad}"]
    assert (tmp_path / "out" / f"snapshot-{bad}.bin").read_bytes() == POISON
    assert body(db, note_id) == "version one, then more"
    with db.begin() as conn:
        assert [v["label"] for v in versions.list_versions(conn, note_id)][-1] == "good"
        states = conn.execute(sa.select(note_snapshots.c.state)).scalars().all()
        assert POISON not in [bytes(state) for state in states]


def test_repair_never_overwrites_a_folder_and_then_changes_nothing(db, note_id, tmp_path):
    with db.begin() as conn:
        update_log.append_updates(conn, note_id, [Writer().type("x")])
    poison_the_log(db, note_id)
    out = tmp_path / "exists"
    out.mkdir()
    with db.begin() as conn, pytest.raises(InvalidError, match="exists already"):
        repair.repair_note(conn, note_id, out)
    with db.begin() as conn:
        assert not repair.inspect_note(conn, note_id).ok


def test_inspect_notes_reports_only_what_is_refused(db, note_id):
    with db.begin() as conn:
        update_log.append_updates(conn, note_id, [Writer().type("fine")])
        notes.create_note(conn, workspace_id="ws", note_id="n2")
    poison_the_log(db, "n2")
    with db.begin() as conn:
        found = {i.note_id: i.ok for i in repair.inspect_notes(conn)}
    assert found == {"n1": True, "n2": False}
