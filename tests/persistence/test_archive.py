"""persistence.archive on memory, SQLite and PostgreSQL: export, import, merge, bad input.

The seed goes through the stores and the notes API only, with notes edited by several
clients (32-bit and 53-bit ids) over a history with versions, compactions, a log tail after
the last snapshot, a soft-deleted note and an empty one.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from crdt import document
from persistence import archive, compaction, migrate, notes, update_log
from persistence import versions as version_store
from persistence.archive import ArchiveError, ArchiveExistsError
from persistence.archive import format as archive_format
from persistence.config import database_config_from_env
from persistence.engine import Database
from persistence.errors import ConflictError, SchemaError
from persistence.schema import metadata, note_snapshots, note_updates
from persistence.schema import notes as notes_table
from persistence.stores import (
    agents,
    background_tasks,
    codebases,
    conversations,
    schedules,
    tasks,
    workspaces,
)
from tests.crdt import yjs_v1
from tests.writer import Peer

# --- seeding -------------------------------------------------------------------------------------

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def store(db: Database, note_id: str, *peers: Peer) -> None:
    """Append what the peers made since last time, one group commit per peer."""
    with db.begin() as conn:
        for peer in peers:
            made = peer.take()
            if made:
                update_log.append_updates(conn, note_id, made)


def edit_together(db: Database, note_id: str) -> None:
    """Three clients typing, deleting and setting keys concurrently, with versions and
    compactions along the way and a log tail after the last snapshot."""
    alice, bob, carol = Peer(7), Peer(2**32 - 5), Peer(2**40 + 3)
    alice.type(0, "Plan: ship the archive ✨\n")
    store(db, note_id, alice)
    bob.receive(alice)
    carol.receive(alice)
    bob.type(6, "(draft) ")
    carol.type(len(str(carol.text)), "- export\n- import\n")
    carol.set("owner", "carol")
    alice.set("owner", "alice")  # concurrent with carol: one wins, the same everywhere
    store(db, note_id, bob, carol, alice)
    with db.begin() as conn:
        version_store.create_version(conn, note_id, label="first draft", now=T0)
    for peer in (alice, bob, carol):
        for other in (alice, bob, carol):
            if peer is not other:
                peer.receive(other)
    alice.delete(6, 14)
    bob.set("tags", ["a", {"b": 2}])
    carol.type(0, "🚀 ")
    store(db, note_id, alice, bob, carol)
    with db.begin() as conn:
        compaction.compact_note_in(conn, note_id, now=T0 + timedelta(minutes=1))
        version_store.create_version(conn, note_id, kind="auto", now=T0 + timedelta(minutes=2))
    bob.receive(carol)
    bob.type(0, "Tail: ")
    alice.set("done", False)
    store(db, note_id, bob, alice)  # the log after the last snapshot


def seed(db: Database) -> dict[str, str]:
    """Every kind of row, through the stores and the notes API. Returns some ids."""
    with db.begin() as conn:
        default = workspaces.ensure_default(conn)["id"]
        ws = workspaces.create(
            conn,
            "team",
            "The team",
            description="everything",
            settings={"retention": {"version_seconds": 3600}, "mixed": [1, 2.5, "x", None, True]},
        )["id"]
        coder = agents.create(
            conn, ws, "coder", "coder", model="m-1", config={"temperature": 0.2, "tools": ["git"]}
        )["id"]
        agents.update(conn, coder, status="busy", last_seen_at=T0)
        agents.create(conn, default, "reviewer", "reviewer")
        repo = codebases.create(
            conn, ws, "coscribe", repo_url="https://example.org/c.git", language="python"
        )["id"]
        for note_id, title in (
            ("plan", "The plan"),
            ("compacted", "Done"),
            ("empty", ""),
            ("trash", "Old"),
            ("restored", "R"),
        ):
            notes.create_note(conn, workspace_id=ws, note_id=note_id, title=title)
    edit_together(db, "plan")

    writer = Peer(11)
    writer.type(0, "all folded into one snapshot")
    store(db, "compacted", writer)
    compaction.compact_note(db, "compacted")

    old = Peer(12)
    old.type(0, "to be deleted")
    store(db, "trash", old)
    with db.begin() as conn:
        version_store.create_version(conn, "trash", label="before deleting")
    old.type(0, "really ")
    store(db, "trash", old)

    back = Peer(13)
    back.type(0, "v1")
    store(db, "restored", back)
    with db.begin() as conn:
        version_store.create_version(conn, "restored", kind="restore", label="restored v1")

    with db.begin() as conn:
        notes.delete_note(conn, "trash")
        conversation = conversations.create(conn, ws, title="kickoff", agent_id=coder)["id"]
        conversations.add_message(conn, conversation, "user", "hello", author="ann")
        conversations.add_message(
            conn, conversation, "assistant", "hi", metadata={"tokens": 3, "tool": None}
        )
        first = tasks.create(conn, ws, "write export", assignee_id=coder, note_id="plan")["id"]
        second = tasks.create(conn, ws, "write import", codebase_id=repo, priority=5)["id"]
        third = tasks.create(conn, ws, "review")["id"]
        tasks.add_dependency(conn, second, first)
        tasks.add_dependency(conn, third, second)
        tasks.add_dependency(conn, third, first)
        tasks.update(conn, first, status="done")
        nightly = schedules.create(
            conn, "nightly", "0 3 * * *", "compact", job_payload={"all": True}, workspace_id=ws
        )["id"]
        schedules.create(conn, "weekly", "0 4 * * mon", "prune", timezone="Europe/Paris")
        schedules.disable(conn, nightly)
        background_tasks.enqueue(conn, "compact", {"note": "plan"}, workspace_id=ws, priority=2)
        background_tasks.enqueue(conn, "prune", schedule_id=nightly, run_after=T0)
        done = background_tasks.enqueue(conn, "mail", {"to": "x"}, run_after=T0)["id"]
        failed = background_tasks.enqueue(conn, "mail", {"to": "y"}, run_after=T0)["id"]
    with db.begin() as conn:
        later = T0 + timedelta(hours=1)
        claimed = background_tasks.claim(conn, "worker-1", kinds=["mail"], now=later)
        other = background_tasks.claim(conn, "worker-1", kinds=["mail"], now=later)
        assert {claimed["id"], other["id"]} == {done, failed}
        background_tasks.complete(conn, done, "worker-1", {"sent": 1}, now=later)
        background_tasks.fail(conn, failed, "worker-1", "smtp down", retry=False, now=later)
    return {"workspace": ws, "agent": coder}


# --- what is compared ----------------------------------------------------------------------------


def entities(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every row of every archived table (notes' metadata included), in primary key order."""
    with db.read() as conn:
        return {
            table.name: [
                dict(row)
                for row in conn.execute(
                    sa.select(table).order_by(*table.primary_key.columns)
                ).mappings()
            ]
            for table in archive.TABLES
        }


def note_states(db: Database) -> dict[str, tuple[dict, dict[int, int]]]:
    """Every note's rendered content and state vector, deleted notes included."""
    states = {}
    with db.read() as conn:
        for note_id in conn.execute(sa.select(notes_table.c.id)).scalars():
            stored = update_log.load_note(conn, note_id, include_deleted=True)
            doc = document.load(stored.state, [update for _, update in stored.updates])
            vector = document.decode_state_vector(document.state_vector(doc))
            states[note_id] = (document.render(doc), vector)
    return states


def versions(db: Database) -> dict[str, list[tuple]]:
    """Every snapshot of every note, oldest first, without its id."""
    found: dict[str, list[tuple]] = {}
    query = sa.select(
        note_snapshots.c.note_id,
        note_snapshots.c.kind,
        note_snapshots.c.label,
        note_snapshots.c.created_at,
        note_snapshots.c.through_seq,
        note_snapshots.c.state,
        note_snapshots.c.state_vector,
    ).order_by(note_snapshots.c.id)
    with db.read() as conn:
        for note_id, *rest in conn.execute(query):
            found.setdefault(note_id, []).append(
                tuple(bytes(v) if isinstance(v, bytes | memoryview) else v for v in rest)
            )
    return found


def everything(db: Database) -> tuple:
    with db.read() as conn:
        log = [
            tuple(row) for row in conn.execute(sa.select(note_updates).order_by("note_id", "seq"))
        ]
    return entities(db), note_states(db), versions(db), log


def assert_imported(source: Database, target: Database) -> None:
    """``target`` is a copy of a seeded ``source``: identical rows, identical notes; its
    versions are the source's, plus one snapshot of the state for each note whose log had a
    tail after its last snapshot."""
    assert entities(target) == entities(source)
    assert note_states(target) == note_states(source)
    source_versions, target_versions = versions(source), versions(target)
    with source.read() as conn:
        tails = {
            note_id
            for note_id in conn.execute(sa.select(notes_table.c.id)).scalars()
            if update_log.load_note(conn, note_id, include_deleted=True).updates
        }
    assert tails == {"plan", "trash"}
    for note_id, snapshots in target_versions.items():
        original = source_versions.get(note_id, [])
        if note_id not in tails:
            assert snapshots == original, note_id
            continue
        assert snapshots[:-1] == original, note_id
        kind, label, _, through_seq, _, _ = snapshots[-1]
        assert (kind, label) == ("compaction", None)
        last_seq = next(r for r in entities(source)["notes"] if r["id"] == note_id)["last_seq"]
        assert through_seq == last_seq
    assert "empty" not in target_versions  # an empty note needs no snapshot


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def unmigrated_database(request, tmp_path) -> Iterator[Callable[[str], Database]]:
    """A factory: a new empty (unmigrated) database of the given driver, each one its own."""
    opened: list[Database] = []

    def make(driver: str) -> Database:
        if driver == "postgres":
            env = {"DATABASE_URL": request.getfixturevalue("postgres_schemas").new()}
        elif driver == "sqlite":
            env = {"COSCRIBE_SQLITE_PATH": str(tmp_path / f"target-{len(opened)}.sqlite")}
        else:
            env = {"COSCRIBE_DB_DRIVER": "memory"}
        database = Database(database_config_from_env(env))
        opened.append(database)
        return database

    yield make
    for database in opened:
        database.close()


@pytest.fixture
def new_database(unmigrated_database) -> Callable[[str], Database]:
    """A factory: a migrated, empty database of the given driver."""

    def make(driver: str) -> Database:
        database = unmigrated_database(driver)
        migrate.upgrade(database)
        return database

    return make


def read_lines(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def write_lines(path: Path, lines: list[dict[str, Any]]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    return path


# --- round trips ---------------------------------------------------------------------------------


def test_every_table_is_archived():
    archived = {table.name for table in archive.TABLES}
    not_archived = {table.name for table in archive_format.NOT_ARCHIVED}
    assert archived | {"note_snapshots", "note_updates"} | not_archived == set(metadata.tables)
    # Foreign-key order: every table a table references comes before it.
    for index, table in enumerate(archive.TABLES):
        for key in table.foreign_keys:
            target = key.column.table
            if target is not table:
                assert archive.TABLES.index(target) < index, (table.name, target.name)


def test_round_trip_on_each_driver(db, new_database, tmp_path):
    seed(db)
    path = tmp_path / "backup.coscribe.gz"
    exported = archive.export_archive(db, path)
    assert exported.bytes == path.stat().st_size > 0
    assert exported.counts["notes"] == exported.notes == 5
    assert exported.deleted_notes == 1
    assert exported.counts["task_dependencies"] == 3
    assert exported.counts["conversation_messages"] == 2
    with db.read() as conn:
        assert (
            exported.versions
            == conn.execute(sa.select(sa.func.count()).select_from(note_snapshots)).scalar_one()
        )

    target = new_database(db.driver)
    imported = archive.import_archive(target, path)
    assert imported.added == exported.counts
    assert set(imported.skipped.values()) == {0}
    assert (imported.notes, imported.versions) == (exported.notes, exported.versions)
    assert imported.bytes == exported.bytes
    assert imported.state_bytes == exported.state_bytes
    assert_imported(db, target)

    # Exporting the copy gives the same archive, but for the snapshots of the log tails.
    again = archive.export_archive(target, tmp_path / "again.gz")
    assert again.counts == exported.counts
    assert again.versions == exported.versions + 2
    third = new_database(db.driver)
    archive.import_archive(third, tmp_path / "again.gz")
    assert everything(third) == everything(target)


def test_imported_notes_take_new_edits_and_compact(db, new_database, tmp_path):
    seed(db)
    archive.export_archive(db, tmp_path / "a.gz")
    target = new_database(db.driver)
    archive.import_archive(target, tmp_path / "a.gz")
    with target.read() as conn:
        doc = update_log.load_doc(conn, "plan")
    editor = Peer(99)
    editor.doc.apply_update(document.encode_state(doc))
    editor.type(0, "After import. ")
    with target.begin() as conn:
        last_seq = notes.get_note(conn, "plan")["last_seq"]
        assert update_log.append_updates(conn, "plan", editor.take()) == [last_seq + 1]
    with target.begin() as conn:
        assert document.body_text(update_log.load_doc(conn, "plan")) == str(editor.text)
        assert compaction.compact_note_in(conn, "plan").merged == 1
        assert document.body_text(update_log.load_doc(conn, "plan")) == str(editor.text)


def test_cross_driver_round_trip(db, new_database, tmp_path):
    seed(db)
    archive.export_archive(db, tmp_path / "a.gz")
    other = "memory" if db.driver != "memory" else "sqlite"
    target = new_database(other)
    archive.import_archive(target, tmp_path / "a.gz")
    assert_imported(db, target)


def test_archive_is_gzip_json_lines_with_a_header(db, tmp_path):
    seed(db)
    path = tmp_path / "a.gz"
    archive.export_archive(db, path)
    lines = read_lines(path)
    header = lines[0]
    assert (header["type"], header["format"]) == ("header", "coscribe-archive")
    assert header["version"] == archive.FORMAT_VERSION == 1
    assert header["source"] == {"driver": db.driver, "schema_revision": migrate.head_revision()}
    assert datetime.fromisoformat(header["created_at"]).tzinfo is not None
    assert lines[-1] == {"type": "end", "records": len(lines) - 2}
    assert sum(header["counts"].values()) == len(lines) - 2
    plan = next(
        line for line in lines if line.get("type") == "note" and line["row"]["id"] == "plan"
    )
    with db.read() as conn:
        doc = update_log.load_doc(conn, "plan")
    state = base64.b64decode(plan["state"])
    assert document.render(document.load(state, [])) == document.render(doc)
    parsed = archive.read_header(path)
    assert (parsed.version, parsed.counts, parsed.source) == (1, header["counts"], header["source"])
    assert parsed.created_at == datetime.fromisoformat(header["created_at"])


def test_progress_goes_through_every_table_to_the_total(db, new_database, tmp_path):
    seed(db)
    exported: list[archive.ArchiveProgress] = []
    archive.export_archive(db, tmp_path / "a.gz", progress=exported.append)
    target = new_database(db.driver)
    imported: list[archive.ArchiveProgress] = []
    archive.import_archive(target, tmp_path / "a.gz", progress=imported.append)
    for events in (exported, imported):
        total = events[0].total
        assert total == sum(archive.read_header(tmp_path / "a.gz").counts.values())
        assert events[-1] == archive.ArchiveProgress(total, total, "done")
        dones = [event.done for event in events]
        assert dones == sorted(dones)
        tables = [event.table for event in events[:-1]]
        assert {"workspaces", "notes", "tasks", "background_tasks"} <= set(tables)


def test_export_is_one_consistent_state_while_others_write(db, new_database, tmp_path):
    if db.driver == "memory":
        pytest.skip("memory has a single connection: nobody else can write meanwhile")
    ids = seed(db)
    before = everything(db)
    writer = Peer(4242)
    wrote: list[str] = []

    def write_meanwhile(progress: archive.ArchiveProgress) -> None:
        if progress.table == "notes" and not wrote:
            with db.begin() as conn:  # another connection, committed mid-export
                wrote.append(tasks.create(conn, ids["workspace"], "late")["id"])
                writer.doc.apply_update(document.encode_state(update_log.load_doc(conn, "plan")))
            writer.type(0, "late edit ")
            store(db, "plan", writer)

    archive.export_archive(db, tmp_path / "a.gz", progress=write_meanwhile)
    assert wrote
    target = new_database(db.driver)
    archive.import_archive(target, tmp_path / "a.gz")
    copy_entities, copy_states, _, _ = everything(target)
    assert copy_entities == before[0]
    assert copy_states == before[1]
    assert wrote[0] not in {row["id"] for row in copy_entities["tasks"]}


# --- export failures -----------------------------------------------------------------------------


@pytest.fixture
def out(tmp_path) -> Path:
    """An empty folder to export to (the SQLite database lives in tmp_path itself)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_export_refuses_an_existing_file_unless_told(db, out):
    seed(db)
    path = out / "a.gz"
    path.write_bytes(b"precious")
    with pytest.raises(ArchiveExistsError, match="already exists"):
        archive.export_archive(db, path)
    assert path.read_bytes() == b"precious"
    archive.export_archive(db, path, overwrite=True)
    assert read_lines(path)[0]["format"] == "coscribe-archive"
    assert sorted(p.name for p in out.iterdir()) == ["a.gz"]


def test_a_failed_export_leaves_no_file(db, out):
    seed(db)
    path = out / "a.gz"

    def explode(progress: archive.ArchiveProgress) -> None:
        if progress.table == "notes":
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        archive.export_archive(db, path, progress=explode)
    assert list(out.iterdir()) == []
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        archive.export_archive(db, path, overwrite=True, progress=explode)
    assert path.read_bytes() == b"old"
    assert list(out.iterdir()) == [path]


def test_export_of_a_missing_folder_or_a_folder_is_one_error(db, out):
    with pytest.raises(ArchiveError, match="does not exist"):
        archive.export_archive(db, out / "nowhere" / "a.gz")
    with pytest.raises(ArchiveError, match="is a directory"):
        archive.export_archive(db, out, overwrite=True)


def test_export_refuses_a_note_whose_stored_data_does_not_apply(db, out):
    seed(db)
    with db.begin() as conn:
        seq = notes.get_note(conn, "compacted")["last_seq"] + 1
        conn.execute(
            sa.update(notes_table).where(notes_table.c.id == "compacted").values(last_seq=seq)
        )
        conn.execute(
            sa.insert(note_updates).values(
                note_id="compacted", seq=seq, update=b"\xff\xff\xff", created_at=T0
            )
        )
    with pytest.raises(ConflictError, match="'compacted' has stored data that does not apply"):
        archive.export_archive(db, out / "a.gz")
    assert list(out.iterdir()) == []


# --- import: empty targets, merging --------------------------------------------------------------


def test_import_refuses_a_non_empty_target_without_merge(db, new_database, tmp_path):
    source = new_database("memory")
    seed(source)
    archive.export_archive(source, tmp_path / "a.gz")
    with db.begin() as conn:
        workspaces.create(conn, "mine")
    before = everything(db)
    # "mine" (and the default workspace, where a start or `db migrate` made it).
    with pytest.raises(ConflictError, match=r"not empty \(workspaces: [12]\).*--merge"):
        archive.import_archive(db, tmp_path / "a.gz")
    assert everything(db) == before


def test_merging_the_same_archive_again_changes_nothing(db, tmp_path):
    seed(db)
    archive.export_archive(db, tmp_path / "a.gz")
    before = everything(db)
    report = archive.import_archive(db, tmp_path / "a.gz", merge=True)
    assert set(report.added.values()) == {0}
    assert report.skipped["tasks"] == 3
    assert report.skipped["notes"] == report.notes_merged == 5
    assert report.notes_changed == 0
    assert report.versions == 0
    assert everything(db) == before


def test_merge_adds_new_rows_and_merges_diverged_notes(db, new_database, tmp_path):
    source = new_database("memory")
    ids = seed(source)
    archive.export_archive(source, tmp_path / "first.gz")
    archive.import_archive(db, tmp_path / "first.gz")

    # Both sides go on: the target edits "plan", the source edits it too and adds rows.
    with db.read() as conn:
        here = Peer(501)
        here.doc.apply_update(document.encode_state(update_log.load_doc(conn, "plan")))
    here.type(0, "[target] ")
    store(db, "plan", here)
    with source.read() as conn:
        there = Peer(502)
        there.doc.apply_update(document.encode_state(update_log.load_doc(conn, "plan")))
    there.type(len(str(there.text)), " [source]")
    there.set("merged", True)
    store(source, "plan", there)
    with source.begin() as conn:
        later = T0 + timedelta(days=1)
        version_store.create_version(conn, "plan", label="after the copy", now=later)
        agents.create(conn, ids["workspace"], "planner", "planner", id="planner")
        notes.create_note(conn, workspace_id=ids["workspace"], note_id="fresh", title="New")
    archive.export_archive(source, tmp_path / "second.gz")

    with db.read() as conn:
        target_updates = document.encode_state(update_log.load_doc(conn, "plan"))
    report = archive.import_archive(db, tmp_path / "second.gz", merge=True)
    assert report.added["agents"] == 1 and report.added["notes"] == 1
    assert report.skipped["agents"] == 2
    assert (report.notes_merged, report.notes_changed) == (5, 1)
    assert report.versions == 1  # "after the copy"; the others are there already
    with db.read() as conn:
        assert agents.get(conn, "planner")["name"] == "planner"
        merged = update_log.load_doc(conn, "plan")
        assert notes.get_note(conn, "fresh")["title"] == "New"
        stored = version_store.list_versions(conn, "plan")
        added = [v for v in stored if v["label"] == "after the copy"]
        assert [v["through_seq"] for v in added] == [0]
    expected = document.load(target_updates, [document.encode_state(there.doc)])
    assert document.render(merged) == document.render(expected)
    body = document.body_text(merged)
    assert body.startswith("[target] ") and body.endswith(" [source]")
    assert document.render(merged)["meta"]["merged"] is True
    assert document.decode_state_vector(document.state_vector(merged)) == (
        document.decode_state_vector(document.state_vector(expected))
    )

    # The merged note goes on like any other, and merging once more changes nothing.
    here.type(0, "more ")
    store(db, "plan", here)
    with db.read() as conn:
        assert document.body_text(update_log.load_doc(conn, "plan")).startswith("more [target] ")
    before = everything(db)
    assert archive.import_archive(db, tmp_path / "second.gz", merge=True).notes_changed == 0
    assert everything(db) == before


def test_merge_refuses_a_clash_on_a_unique_column(db, new_database, tmp_path):
    source = new_database("memory")
    seed(source)
    archive.export_archive(source, tmp_path / "a.gz")
    with db.begin() as conn:
        workspaces.create(conn, "team", id="someone-elses")
    before = everything(db)
    with pytest.raises(ConflictError, match="'someone-elses' has the same slug 'team'"):
        archive.import_archive(db, tmp_path / "a.gz", merge=True)
    assert everything(db) == before


def test_import_into_an_unmigrated_database_is_refused(unmigrated_database, db, tmp_path):
    seed(db)
    archive.export_archive(db, tmp_path / "a.gz")
    target = unmigrated_database(db.driver)
    with pytest.raises(SchemaError, match="coscribe db migrate"):
        archive.import_archive(target, tmp_path / "a.gz")
    assert migrate.status(target).current is None


# --- bad archives --------------------------------------------------------------------------------


def _line_of(lines: list[dict], kind: str, **match: Any) -> int:
    for index, line in enumerate(lines):
        if line.get("type") == kind and all(line.get(k) == v for k, v in match.items()):
            return index
    raise AssertionError(f"no {kind} line")


def _note_line(lines: list[dict], note_id: str) -> int:
    return next(
        i
        for i, line in enumerate(lines)
        if line.get("type") == "note" and line["row"]["id"] == note_id
    )


def _set(lines: list[dict], index: int, **changes: Any) -> list[dict]:
    lines[index] = {**lines[index], **changes}
    return lines


def _bad_state(lines: list[dict]) -> list[dict]:
    return _set(lines, _note_line(lines, "restored"), state="not base64!")


def _undecodable_state(lines: list[dict]) -> list[dict]:
    garbage = base64.b64encode(b"\x05\xff\xff\xff\x01").decode()
    return _set(lines, _note_line(lines, "restored"), state=garbage)


def _wrong_vector(lines: list[dict]) -> list[dict]:
    return _set(
        lines, _note_line(lines, "restored"), state_vector=base64.b64encode(b"\x00").decode()
    )


def _bad_version(lines: list[dict]) -> list[dict]:
    index = _line_of(lines, "version", note_id="restored")
    return _set(lines, index, state=base64.b64encode(b"\x01\x01").decode())


def _deep_any(depth: int) -> str:
    """A state whose one value nests arrays ``depth`` deep: pycrdt crashes decoding 40,000."""
    value = yjs_v1.any_content([yjs_v1.nested_any(depth)])
    update = yjs_v1.update([(5, 0, [yjs_v1.item(yjs_v1.ANY, value, root="deep")])])
    return base64.b64encode(update).decode()


def _refused_state(lines: list[dict]) -> list[dict]:
    return _set(lines, _note_line(lines, "restored"), state=_deep_any(40_000))


def _refused_version(lines: list[dict]) -> list[dict]:
    index = _line_of(lines, "version", note_id="restored")
    return _set(lines, index, state=_deep_any(101))


def _unknown_column(lines: list[dict]) -> list[dict]:
    index = _line_of(lines, "row", table="tasks")
    return _set(lines, index, row={**lines[index]["row"], "colour": "red"})


def _bad_time(lines: list[dict]) -> list[dict]:
    index = _line_of(lines, "row", table="schedules")
    return _set(lines, index, row={**lines[index]["row"], "created_at": "yesterday"})


def _naive_time(lines: list[dict]) -> list[dict]:
    index = _line_of(lines, "row", table="background_tasks")
    return _set(lines, index, row={**lines[index]["row"], "run_after": "2030-01-01T00:00:00"})


def _no_end(lines: list[dict]) -> list[dict]:
    return lines[:-1]


def _cut_in_the_middle(lines: list[dict]) -> list[dict]:
    half = len(lines) // 2
    return [*lines[:half], {"type": "end", "records": half - 1}]


def _out_of_order(lines: list[dict]) -> list[dict]:
    index = _line_of(lines, "row", table="schedules")  # to after the background tasks
    return [*lines[:index], *lines[index + 1 : -1], lines[index], lines[-1]]


def _cycle(lines: list[dict]) -> list[dict]:
    index = _line_of(lines, "row", table="task_dependencies")
    edge = lines[index]["row"]
    reverse = {"task_id": edge["depends_on_id"], "depends_on_id": edge["task_id"]}
    lines.insert(index + 1, {"type": "row", "table": "task_dependencies", "row": reverse})
    lines[0]["counts"]["task_dependencies"] += 1
    lines[-1]["records"] += 1
    return lines


def _dangling_reference(lines: list[dict]) -> list[dict]:
    index = _line_of(lines, "row", table="agents")
    return _set(lines, index, row={**lines[index]["row"], "workspace_id": "nowhere"})


def _newer(lines: list[dict]) -> list[dict]:
    return _set(lines, 0, version=2)


def _no_header(lines: list[dict]) -> list[dict]:
    return lines[1:]


def _other_format(lines: list[dict]) -> list[dict]:
    return _set(lines, 0, format="something-else")


RECORD_CASES: dict[str, tuple[Callable[[list[dict]], list[dict]], str]] = {
    "bad base64": (_bad_state, "not valid base64"),
    "undecodable state": (_undecodable_state, "not a valid Yjs update"),
    "wrong state vector": (_wrong_vector, "state vector does not match"),
    "undecodable version": (_bad_version, "not a valid Yjs update"),
    "state past the update checks": (_refused_state, "nested more than 100 deep"),
    "version past the update checks": (_refused_version, "nested more than 100 deep"),
    "unknown column": (_unknown_column, "column 'colour'"),
    "bad time": (_bad_time, "not an ISO 8601 time"),
    "naive time": (_naive_time, "without a UTC offset"),
    "no end record": (_no_end, "incomplete"),
    "cut in the middle": (_cut_in_the_middle, "holds"),
    "out of order": (_out_of_order, "after the"),
    "dependency cycle": (_cycle, "cycle"),
    "dangling reference": (_dangling_reference, "do not fit the target"),
    "newer format": (
        _newer,
        "archive format 2 is newer than this coscribe supports (1): upgrade coscribe",
    ),
    "no header": (_no_header, "not a coscribe archive (no archive header)"),
    "other format": (_other_format, "not a coscribe archive"),
}


def _raw_case(name: str, good: Path, tmp_path: Path) -> Path:
    bad = tmp_path / f"{name.replace(' ', '-')}.gz"
    data = good.read_bytes()
    if name == "missing file":
        return tmp_path / "missing.gz"
    if name == "directory":
        return tmp_path
    if name == "empty file":
        bad.write_bytes(b"")
    elif name == "not gzip":
        bad.write_bytes(gzip.decompress(data))
    elif name == "not json":
        bad.write_bytes(gzip.compress(b"hello, world\n"))
    elif name == "truncated gzip":
        bad.write_bytes(data[: len(data) * 2 // 3])
    elif name == "corrupt gzip":
        bad.write_bytes(data[:20] + bytes(b ^ 0x55 for b in data[20:60]) + data[60:])
    return bad


RAW_CASES = {
    "missing file": "not found",
    "directory": "is a directory",
    "empty file": "it is empty",
    "not gzip": "not gzip data",
    "not json": "first line is not JSON",
    "truncated gzip": "truncated",
    "corrupt gzip": "corrupt",
}


@pytest.fixture(scope="module")
def good_archive(tmp_path_factory) -> Path:
    """An archive of the full seed (from a memory database), shared by the bad-input cases."""
    folder = tmp_path_factory.mktemp("good")
    with Database(database_config_from_env({"COSCRIBE_DB_DRIVER": "memory"})) as source:
        migrate.upgrade(source)
        seed(source)
        archive.export_archive(source, folder / "good.gz")
    return folder / "good.gz"


def seed_target(db: Database) -> None:
    """A little data of the target's own, none of it clashing with the archive."""
    with db.begin() as conn:
        ws = workspaces.create(conn, "target-team")["id"]
        notes.create_note(conn, workspace_id=ws, note_id="target-note")
    writer = Peer(77)
    writer.type(0, "the target's own")
    store(db, "target-note", writer)


@pytest.mark.parametrize("case", sorted(RECORD_CASES))
@pytest.mark.parametrize("merge", [False, True], ids=["empty-target", "merge"])
def test_a_bad_archive_is_one_error_and_changes_nothing(db, good_archive, tmp_path, case, merge):
    change, message = RECORD_CASES[case]
    lines = change(read_lines(good_archive))
    bad = write_lines(tmp_path / "bad.gz", lines)
    if merge:
        seed_target(db)
    before = everything(db)
    with pytest.raises(ArchiveError) as raised:
        archive.import_archive(db, bad, merge=merge)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert everything(db) == before


@pytest.mark.parametrize("case", sorted(RAW_CASES))
def test_a_file_that_is_not_an_archive_is_one_error_and_changes_nothing(
    db, good_archive, tmp_path, case
):
    bad = _raw_case(case, good_archive, tmp_path)
    seed_target(db)
    before = everything(db)
    with pytest.raises(ArchiveError) as raised:
        archive.import_archive(db, bad, merge=True)
    assert RAW_CASES[case] in str(raised.value)
    assert "\n" not in str(raised.value)
    assert everything(db) == before


def test_the_good_archive_imports(db, good_archive):
    """The bad cases fail because of what was changed: the unchanged archive imports."""
    seed_target(db)
    report = archive.import_archive(db, good_archive, merge=True)
    assert report.notes == 5 and report.added["tasks"] == 3
