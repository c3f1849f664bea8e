"""persistence.notes on memory, SQLite and PostgreSQL: the update log, snapshots, versions."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pycrdt
import pytest
import sqlalchemy as sa

from crdt import document
from persistence import compaction, migrate, notes, update_log, versions
from persistence.config import database_config_from_env
from persistence.engine import Database
from persistence.errors import ConflictError, InvalidError, NotFoundError
from persistence.schema import note_snapshots, note_updates, workspaces
from tests.data import load_trace
from tests.writer import Writer

WAIT_S = 10


def add_workspace(conn: sa.Connection, workspace_id: str = "ws") -> str:
    now = datetime.now(UTC)
    conn.execute(
        sa.insert(workspaces).values(
            id=workspace_id,
            slug=workspace_id,
            name=workspace_id,
            description="",
            settings={},
            created_at=now,
            updated_at=now,
        )
    )
    return workspace_id


@pytest.fixture
def note_id(db: Database) -> str:
    with db.begin() as conn:
        add_workspace(conn)
        return notes.create_note(conn, workspace_id="ws", note_id="n1", title="First")["id"]


def count_rows(db: Database, table: sa.Table, note_id: str) -> int:
    with db.begin() as conn:
        query = sa.select(sa.func.count()).select_from(table).where(table.c.note_id == note_id)
        return conn.execute(query).scalar_one()


def body(db: Database, note_id: str) -> str:
    with db.begin() as conn:
        return document.body_text(update_log.load_doc(conn, note_id))


# --- notes ---------------------------------------------------------------------------------------


def test_create_and_get_note(db):
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    with db.begin() as conn:
        add_workspace(conn)
        note = notes.create_note(conn, workspace_id="ws", note_id="my_Note-1", title="T", now=now)
        generated = notes.create_note(conn, workspace_id="ws")
    assert note == {
        "id": "my_Note-1",
        "workspace_id": "ws",
        "title": "T",
        "last_seq": 0,
        "created_at": now,
        "updated_at": now,
        "deleted_at": None,
    }
    assert len(generated["id"]) == 32 and generated["title"] == ""
    with db.begin() as conn:
        assert notes.get_note(conn, "my_Note-1") == note
        assert notes.find_note(conn, "missing") is None
        with pytest.raises(NotFoundError):
            notes.get_note(conn, "missing")


@pytest.mark.parametrize("bad", ["", "a b", "x" * 129, "é", "a/b", 5, b"n1"])
def test_create_note_refuses_bad_ids(db, bad):
    with db.begin() as conn:
        add_workspace(conn)
        with pytest.raises(InvalidError):
            notes.create_note(conn, workspace_id="ws", note_id=bad)


def test_create_note_errors(db, note_id):
    with db.begin() as conn:
        with pytest.raises(ConflictError):
            notes.create_note(conn, workspace_id="ws", note_id=note_id)
        with pytest.raises(NotFoundError):
            notes.create_note(conn, workspace_id="nope", note_id="n2")
        with pytest.raises(InvalidError):
            notes.create_note(conn, workspace_id="ws", note_id="n2", title="x" * 501)
        with pytest.raises(InvalidError):
            notes.create_note(conn, workspace_id="ws", note_id="n2", title="nul\x00")
        with pytest.raises(InvalidError):
            notes.create_note(conn, workspace_id="ws", note_id="n2", now=datetime(2025, 1, 1))
        # The transaction is still usable, and nothing was written.
        assert notes.find_note(conn, "n2") is None
        assert notes.get_note(conn, note_id)["title"] == "First"


def test_soft_deleted_note_is_hidden_and_refuses_appends(db, note_id):
    with db.begin() as conn:
        conn.execute(
            sa.update(notes.notes)
            .values(deleted_at=datetime.now(UTC))
            .where(notes.notes.c.id == note_id)
        )
    with db.begin() as conn:
        assert notes.find_note(conn, note_id) is None
        assert notes.get_note(conn, note_id, include_deleted=True)["deleted_at"] is not None
        with pytest.raises(NotFoundError):
            update_log.append_update(conn, note_id, Writer().type("x"))
        with pytest.raises(NotFoundError):
            update_log.load_note(conn, note_id)
        with pytest.raises(NotFoundError):
            compaction.compact_note_in(conn, note_id)
        with pytest.raises(NotFoundError):
            versions.create_version(conn, note_id)
        assert update_log.load_note(conn, note_id, include_deleted=True).updates == []
    assert count_rows(db, note_updates, note_id) == 0


# --- append and load -----------------------------------------------------------------------------


def test_append_and_load_round_trip(db, note_id):
    writer = Writer()
    first = [writer.type("hello"), writer.type(" world")]
    later = [writer.type("!"), writer.delete(0, 1), writer.type(" é😀")]
    with db.begin() as conn:
        assert [update_log.append_update(conn, note_id, update) for update in first] == [1, 2]
    with db.begin() as conn:
        assert update_log.append_updates(conn, note_id, later) == [3, 4, 5]
        assert update_log.append_updates(conn, note_id, []) == []
    with db.begin() as conn:
        stored = update_log.load_note(conn, note_id)
        note = notes.get_note(conn, note_id)
    assert stored == update_log.StoredNote(
        note_id=note_id,
        workspace_id=note["workspace_id"],
        state=None,
        through_seq=0,
        updates=list(enumerate(first + later, start=1)),
        last_seq=5,
    )
    assert note["last_seq"] == 5
    assert body(db, note_id) == writer.body == "ello world! é😀"


def test_seqs_keep_increasing_across_transactions_and_compaction(db, note_id):
    writer = Writer()
    seqs = []
    for round_ in range(3):
        with db.begin() as conn:
            seqs += update_log.append_updates(conn, note_id, [writer.type("a"), writer.type("b")])
            if round_ == 1:
                compaction.compact_note_in(conn, note_id)
    assert seqs == [1, 2, 3, 4, 5, 6]
    with db.begin() as conn:
        stored = update_log.load_note(conn, note_id)
    assert (stored.through_seq, [seq for seq, _ in stored.updates], stored.last_seq) == (
        4,
        [5, 6],
        6,
    )
    assert body(db, note_id) == "ababab"


@pytest.mark.parametrize(
    "bad",
    [b"", "text", 3, None, b"x" * (update_log.MAX_UPDATE_BYTES + 1)],
    ids=["empty", "str", "int", "none", "oversize"],
)
def test_append_refuses_bad_updates_and_writes_nothing(db, note_id, bad):
    good = Writer().type("ok")
    with db.begin() as conn:
        with pytest.raises(InvalidError):
            update_log.append_updates(conn, note_id, [good, bad])
        assert notes.get_note(conn, note_id)["last_seq"] == 0
    assert count_rows(db, note_updates, note_id) == 0


def test_append_errors(db, note_id):
    update = Writer().type("x")
    with db.begin() as conn:
        with pytest.raises(NotFoundError):
            update_log.append_update(conn, "missing", update)
        with pytest.raises(InvalidError):
            update_log.append_update(conn, "not an id", update)
        with pytest.raises(InvalidError):
            update_log.append_updates(conn, note_id, update)  # bytes, not a list of them
        with pytest.raises(NotFoundError):
            update_log.append_updates(conn, "missing", [])
        with pytest.raises(InvalidError):
            update_log.append_update(conn, note_id, update, now=datetime(2025, 1, 1))
        with pytest.raises(NotFoundError):
            update_log.load_note(conn, "missing")
    assert count_rows(db, note_updates, note_id) == 0


def test_a_clashing_append_leaves_nothing_behind(db, note_id):
    # A row written behind append_updates' back takes seq 2: the second append fails whole.
    writer = Writer()
    with db.begin() as conn:
        update_log.append_update(conn, note_id, writer.type("a"))
        conn.execute(
            sa.insert(note_updates).values(
                note_id=note_id, seq=2, update=writer.type("b"), created_at=datetime.now(UTC)
            )
        )
    with db.begin() as conn:
        with pytest.raises(ConflictError):
            update_log.append_updates(conn, note_id, [writer.type("c"), writer.type("d")])
        # The savepoint undid the counter too, so the transaction can go on and commit.
        assert notes.get_note(conn, note_id)["last_seq"] == 1
    assert count_rows(db, note_updates, note_id) == 2


def test_updated_at_follows_appends(db, note_id):
    later = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
    with db.begin() as conn:
        update_log.append_update(conn, note_id, Writer().type("x"), now=later)
        assert notes.get_note(conn, note_id)["updated_at"] == later


def test_appends_store_times_as_sqlalchemy_does(db, note_id):
    # The append's driver SQL binds its time through the column type's dialect processor, so
    # its rows hold what SQLAlchemy writes for the same time (on SQLite: text with
    # microseconds, not the sqlite3 module's default adapter, deprecated since Python 3.12).
    on_the_second = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
    with db.begin() as conn:
        update_log.append_update(conn, note_id, Writer().type("x"), now=on_the_second)
        conn.execute(
            sa.update(workspaces).where(workspaces.c.id == "ws").values(updated_at=on_the_second)
        )
        stored = conn.execute(
            sa.select(sa.cast(note_updates.c.created_at, sa.String)).where(
                note_updates.c.note_id == note_id
            )
        ).scalar_one()
        written = conn.execute(
            sa.select(sa.cast(workspaces.c.updated_at, sa.String)).where(workspaces.c.id == "ws")
        ).scalar_one()
        assert stored == written
        row = conn.execute(sa.select(note_updates.c.created_at)).scalar_one()
        assert row == on_the_second


def test_load_refuses_corrupt_stored_bytes(db, note_id):
    writer = Writer()
    with db.begin() as conn:
        update_log.append_updates(conn, note_id, [writer.type("fine"), b"\x01\x02garbage"])
    with db.begin() as conn:
        with pytest.raises(document.InvalidUpdate, match="update 1"):
            update_log.load_doc(conn, note_id)
        with pytest.raises(ConflictError, match="does not apply"):
            compaction.compact_note_in(conn, note_id)
        with pytest.raises(ConflictError, match="does not apply"):
            versions.create_version(conn, note_id)
    assert count_rows(db, note_updates, note_id) == 2
    assert count_rows(db, note_snapshots, note_id) == 0


# --- compaction ----------------------------------------------------------------------------------


def test_compaction_merges_and_deletes_exactly_what_it_merged(db, note_id):
    writer = Writer()
    updates = [writer.type(f"{i},") for i in range(10)]
    with db.begin() as conn:
        update_log.append_updates(conn, note_id, updates)
    result = compaction.compact_note(db, note_id, max_seq=6)
    assert result.compacted
    assert (result.through_seq, result.merged, result.deleted) == (6, 6, 6)
    assert (result.rows_before, result.rows_after) == (6, 1)
    assert result.bytes_before == sum(map(len, updates[:6]))
    with db.begin() as conn:
        stored = update_log.load_note(conn, note_id)
        snapshot = conn.execute(sa.select(note_snapshots)).mappings().one()
    assert snapshot["kind"] == "compaction" and snapshot["through_seq"] == 6
    assert result.bytes_after == len(snapshot["state"])
    assert stored.through_seq == 6 and [seq for seq, _ in stored.updates] == [7, 8, 9, 10]
    assert body(db, note_id) == writer.body

    rest = compaction.compact_note(db, note_id)  # max_seq: the highest stored
    assert (rest.through_seq, rest.merged, rest.deleted, rest.rows_before) == (10, 4, 4, 5)
    again = compaction.compact_note(db, note_id)
    assert not again.compacted and (again.merged, again.deleted, again.through_seq) == (0, 0, 10)
    assert count_rows(db, note_updates, note_id) == 0
    assert count_rows(db, note_snapshots, note_id) == 2
    assert body(db, note_id) == writer.body


def test_compaction_max_seq_beyond_or_below_what_is_stored(db, note_id):
    writer = Writer()
    with db.begin() as conn:
        update_log.append_updates(conn, note_id, [writer.type("a"), writer.type("b")])
        result = compaction.compact_note_in(conn, note_id, max_seq=1000)
    assert result.through_seq == 2  # the highest seq merged, not the one asked for
    with db.begin() as conn:
        update_log.append_update(conn, note_id, writer.type("c"))
        result = compaction.compact_note_in(conn, note_id, max_seq=1)
    assert not result.compacted and result.through_seq == 2
    assert count_rows(db, note_updates, note_id) == 1
    assert body(db, note_id) == "abc"


def test_compaction_of_an_empty_note_and_bad_arguments(db, note_id):
    with db.begin() as conn:
        result = compaction.compact_note_in(conn, note_id)
        assert (result.compacted, result.through_seq, result.merged) == (False, 0, 0)
        for bad in (-1, 1.5, "3", True, 2**63):
            with pytest.raises(InvalidError):
                compaction.compact_note_in(conn, note_id, max_seq=bad)
        with pytest.raises(NotFoundError):
            compaction.compact_note_in(conn, "missing")
    assert count_rows(db, note_snapshots, note_id) == 0


def test_compaction_removes_rows_a_version_already_covers(db, note_id):
    writer = Writer()
    with db.begin() as conn:
        update_log.append_updates(conn, note_id, [writer.type("a"), writer.type("b")])
        versions.create_version(conn, note_id, label="v1")
        below = compaction.compact_note_in(conn, note_id, max_seq=1)
        result = compaction.compact_note_in(conn, note_id)
    # Nothing to merge past the version, but rows 1-2 were only reachable through it; still,
    # no row above max_seq is touched.
    assert (below.compacted, below.deleted, below.through_seq) == (False, 1, 2)
    assert (result.compacted, result.merged, result.deleted, result.through_seq) == (False, 0, 1, 2)
    assert body(db, note_id) == "ab"


# --- versions ------------------------------------------------------------------------------------


def test_versions(db, note_id):
    writer = Writer()
    t1 = datetime(2025, 1, 1, tzinfo=UTC)
    with db.begin() as conn:
        empty = versions.create_version(conn, note_id, now=t1)
        update_log.append_updates(conn, note_id, [writer.type("one"), writer.type(" two")])
        v1 = versions.create_version(conn, note_id, label="draft", now=t1)
        update_log.append_update(conn, note_id, writer.type(" three"))
        v2 = versions.create_version(conn, note_id, kind="auto")
    assert empty["through_seq"] == 0 and empty["kind"] == "manual" and empty["label"] is None
    assert v1 == {
        "id": v1["id"],
        "note_id": note_id,
        "through_seq": 2,
        "kind": "manual",
        "label": "draft",
        "created_at": t1,
        "size": v1["size"],
    }
    assert v1["size"] > 0 and v2["through_seq"] == 3 and v2["kind"] == "auto"
    # Versions delete nothing, and the newest is the load base.
    assert count_rows(db, note_updates, note_id) == 3
    with db.begin() as conn:
        listed = versions.list_versions(conn, note_id)
        full = versions.get_version(conn, note_id, v1["id"])
        stored = update_log.load_note(conn, note_id)
    assert [v["id"] for v in listed] == [v2["id"], v1["id"], empty["id"]]
    assert listed[1] == v1 and "state" not in listed[0]
    assert len(full["state"]) == full["size"] == v1["size"]
    assert document.body_text(document.load(full["state"], [])) == "one two"
    assert document.decode_state_vector(full["state_vector"]) == {7: len("one two")}
    assert stored.through_seq == 3 and stored.updates == []
    assert body(db, note_id) == "one two three"


def test_version_errors(db, note_id):
    with db.begin() as conn:
        version = versions.create_version(conn, note_id)
        notes.create_note(conn, workspace_id="ws", note_id="other")
        for bad_version in (version["id"] + 1, 0, -5, 2**70):
            with pytest.raises(NotFoundError):
                versions.get_version(conn, note_id, bad_version)
        with pytest.raises(NotFoundError):
            versions.get_version(conn, "other", version["id"])
        for bad_id in ("1", None, True):
            with pytest.raises(InvalidError):
                versions.get_version(conn, note_id, bad_id)
        with pytest.raises(NotFoundError):
            versions.list_versions(conn, "missing")
        with pytest.raises(InvalidError):
            versions.create_version(conn, note_id, kind="compaction")
        with pytest.raises(InvalidError):
            versions.create_version(conn, note_id, label="x" * 201)
        with pytest.raises(InvalidError):
            versions.create_version(conn, note_id, label=5)
        assert versions.list_versions(conn, "other") == []
    assert count_rows(db, note_snapshots, note_id) == 1


# --- concurrency (two real connections) ----------------------------------------------------------


class Paused:
    """Makes crdt.document.merge (called by compact_note once it has read) wait for release.

    Only the first ``pauses`` merges wait; later ones (another compaction's) run through.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, pauses: int = 1) -> None:
        self.merging = threading.Event()
        self.release = threading.Event()
        self.pauses = pauses
        real = document.merge

        def merge(state, updates):
            result = real(state, updates)
            if self.pauses > 0:
                self.pauses -= 1
                self.merging.set()
                assert self.release.wait(WAIT_S), "never released"
            return result

        monkeypatch.setattr(document, "merge", merge)


def test_appends_while_compaction_merges_are_neither_blocked_nor_lost(db, note_id, monkeypatch):
    # The merge holds no lock and no connection (also on SQLite and in memory, where a write
    # transaction excludes every other): appends to this note and to others, from other
    # threads and connections, commit while it is paused, and survive its write.
    writer, other = Writer(), Writer(client_id=9)
    with db.begin() as conn:
        notes.create_note(conn, workspace_id="ws", note_id="other")
        update_log.append_updates(conn, note_id, [writer.type(c) for c in "abcde"])
    paused = Paused(monkeypatch)

    def append(target: str, update: bytes) -> int:
        with db.begin() as conn:
            return update_log.append_update(conn, target, update)

    with ThreadPoolExecutor(max_workers=3) as pool:
        compacting = pool.submit(compaction.compact_note, db, note_id)
        assert paused.merging.wait(WAIT_S)  # it has read seqs 1-5 and is merging them
        late = writer.type("f")
        # Committed while the merge is still paused: nothing waits for the compaction.
        assert pool.submit(append, note_id, late).result(WAIT_S) == 6
        for seq, chunk in enumerate("xyz", start=1):
            assert pool.submit(append, "other", other.type(chunk)).result(WAIT_S) == seq
        assert not compacting.done()
        paused.release.set()
        result = compacting.result(WAIT_S)
    assert (result.through_seq, result.merged, result.deleted) == (5, 5, 5)
    with db.begin() as conn:
        stored = update_log.load_note(conn, note_id)
    assert stored.through_seq == 5 and stored.updates == [(6, late)]
    assert body(db, note_id) == writer.body == "abcdef"
    assert body(db, "other") == "xyz"


def test_compaction_never_claims_a_seq_it_cannot_see(db, note_id):
    if db.driver != "postgres":
        pytest.skip("only PostgreSQL lets a reader run beside an open append")
    writer = Writer()
    with db.begin() as conn:
        update_log.append_updates(conn, note_id, [writer.type("a"), writer.type("b")])
    # Seq 3 is allocated and written but not committed while the compaction runs.
    with db.connect() as appender:
        transaction = appender.begin()
        assert update_log.append_update(appender, note_id, writer.type("c")) == 3
        result = compaction.compact_note(db, note_id, max_seq=3)
        transaction.commit()
    assert (result.through_seq, result.merged) == (2, 2)
    assert body(db, note_id) == "abc"


def test_a_compaction_superseded_while_it_merged_starts_over(db, note_id, monkeypatch):
    # The first compaction reads seqs 1-2 and pauses in its merge; meanwhile a second one
    # compacts them and an append adds seq 3. The first then finds a newer snapshot than the
    # one it read: it writes nothing of what it merged, and starts over from the new one.
    writer = Writer()
    with db.begin() as conn:
        update_log.append_updates(conn, note_id, [writer.type("a"), writer.type("b")])
    paused = Paused(monkeypatch)
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(compaction.compact_note, db, note_id)
        assert paused.merging.wait(WAIT_S)
        second = compaction.compact_note(db, note_id)
        assert (second.through_seq, second.merged, second.deleted) == (2, 2, 2)
        with db.begin() as conn:
            update_log.append_update(conn, note_id, writer.type("c"))
        paused.release.set()
        result = first.result(WAIT_S)
    assert (result.through_seq, result.merged, result.deleted, result.rows_before) == (3, 1, 1, 2)
    assert count_rows(db, note_snapshots, note_id) == 2
    assert count_rows(db, note_updates, note_id) == 0
    assert body(db, note_id) == "abc"


def test_a_long_log_is_deleted_in_batches_after_the_snapshot(db, note_id, monkeypatch):
    monkeypatch.setattr(compaction, "DELETE_BATCH_ROWS", 3)
    monkeypatch.setattr(compaction, "DELETE_PAUSE_S", 0)
    writer = Writer()
    with db.begin() as conn:
        update_log.append_updates(conn, note_id, [writer.type(c) for c in "abcd"])
        versions.create_version(conn, note_id)  # holds rows 1-4 but deletes none
        update_log.append_updates(conn, note_id, [writer.type(c) for c in "efghij"])
    result = compaction.compact_note(db, note_id, max_seq=8)
    # Merged: 5-8 on top of the version; deleted: those and the rows the version held.
    assert (result.through_seq, result.merged, result.deleted) == (8, 4, 8)
    with db.begin() as conn:
        assert [seq for seq, _ in update_log.load_note(conn, note_id).updates] == [9, 10]
    assert count_rows(db, note_updates, note_id) == 2
    assert body(db, note_id) == "abcdefghij"


# --- a real editing trace ------------------------------------------------------------------------


def trace_updates() -> tuple[list[bytes], str]:
    """Replay the automerge-paper trace, one stored update per user transaction."""
    trace = load_trace("automerge-paper")
    # pycrdt positions are UTF-8 bytes, the trace's code points: the same for ASCII text.
    assert trace["endContent"].isascii()
    writer = Writer(client_id=document.random_client_id())
    updates = []
    for transaction in trace["txns"]:
        with writer.doc.transaction():
            for position, deleted, inserted in transaction["patches"]:
                if deleted:
                    del writer.text[position : position + deleted]
                if inserted:
                    writer.text.insert(position, inserted)
        updates += writer.captured
        writer.captured.clear()
    assert writer.body == trace["endContent"]
    return updates, trace["endContent"]


@pytest.mark.slow
def test_the_automerge_paper_trace_survives_storage_and_compaction(tmp_path):
    updates, end_content = trace_updates()
    assert len(updates) == 259_778
    config = database_config_from_env({"COSCRIBE_SQLITE_PATH": str(tmp_path / "trace.sqlite")})
    with Database(config) as db:
        migrate.upgrade(db)
        with db.begin() as conn:
            add_workspace(conn)
            notes.create_note(conn, workspace_id="ws", note_id="paper")
            for start_at in range(0, len(updates), 10_000):
                update_log.append_updates(conn, "paper", updates[start_at : start_at + 10_000])
        assert body(db, "paper") == end_content
        result = compaction.compact_note(db, "paper")
        assert (result.merged, result.deleted, result.through_seq) == (259_778,) * 3
        assert result.bytes_after < result.bytes_before / 10
        with db.begin() as conn:
            stored = update_log.load_note(conn, "paper")
        assert stored.updates == [] and stored.through_seq == 259_778
        assert body(db, "paper") == end_content


def test_append_stores_many_notes_at_once_and_reports_the_rest(db):
    with db.begin() as conn:
        add_workspace(conn)
        for note_id in ("a", "b", "gone"):
            notes.create_note(conn, workspace_id="ws", note_id=note_id)
        update_log.append_update(conn, "b", Writer(client_id=1).type("first"))
        notes.delete_note(conn, "gone")
    a, b = Writer(client_id=2), Writer(client_id=3)
    b.type("first")  # b's doc continues after what is stored
    batch = {
        "a": [a.type("x"), a.type("y")],
        "b": [b.type(" second")],
        "gone": [Writer().type("z")],
        "missing": [Writer().type("z")],
        "bad": [b""],
    }
    with db.begin() as conn:
        failures = update_log.append(conn, batch).failures
    assert {k: type(v).__name__ for k, v in failures.items()} == {
        "gone": "NotFoundError",
        "missing": "NotFoundError",
        "bad": "InvalidError",
    }
    with db.begin() as conn:
        assert [seq for seq, _ in update_log.load_note(conn, "a").updates] == [1, 2]
        assert [seq for seq, _ in update_log.load_note(conn, "b").updates] == [1, 2]
        assert str(update_log.load_doc(conn, "a").get("content", type=pycrdt.Text)) == "xy"
        assert update_log.load_note(conn, "gone", include_deleted=True).updates == []


def test_a_batch_that_fails_as_a_whole_is_stored_note_by_note(db):
    with db.begin() as conn:
        add_workspace(conn)
        for note_id in ("a", "clash", "c"):
            notes.create_note(conn, workspace_id="ws", note_id=note_id)
        # A row written behind append's back takes the seq append will allocate to "clash":
        # the batch's one INSERT fails, and only that note should.
        conn.execute(
            sa.insert(note_updates).values(
                note_id="clash", seq=1, update=Writer().type("z"), created_at=datetime.now(UTC)
            )
        )
    a, c = Writer(client_id=2), Writer(client_id=3)
    batch = {"a": [a.type("x"), a.type("y")], "clash": [Writer().type("q")], "c": [c.type("w")]}
    with db.begin() as conn:
        result = update_log.append(conn, batch)
    assert result.batch_error is not None
    assert {k: type(v) for k, v in result.failures.items()} == {"clash": ConflictError}
    assert result.seqs == {"a": [1, 2], "c": [1]}
    with db.begin() as conn:
        assert document.body_text(update_log.load_doc(conn, "a")) == "xy"
        assert document.body_text(update_log.load_doc(conn, "c")) == "w"
        # Nothing of the failed note was written, and its counter was not bumped.
        assert [seq for seq, _ in update_log.load_note(conn, "clash").updates] == [1]
        assert notes.get_note(conn, "clash")["last_seq"] == 0


def test_append_of_one_note_raises_what_went_wrong(db):
    with db.begin() as conn:
        add_workspace(conn)
        notes.create_note(conn, workspace_id="ws", note_id="a")
        result = update_log.append(conn, {"a": [], "nope": []})
        assert result.seqs == {"a": []}
        assert isinstance(result.failures["nope"], NotFoundError)
        with pytest.raises(NotFoundError):
            update_log.append_updates(conn, "nope", [Writer().type("x")])
        with pytest.raises(InvalidError, match="single value"):
            update_log.append_updates(conn, "a", Writer().type("x"))


def test_compact_notes_reports_progress_totals_and_skips(db, note_id):
    writer, other = Writer(), Writer(client_id=9)
    with db.begin() as conn:
        notes.create_note(conn, workspace_id="ws", note_id="short")
        notes.create_note(conn, workspace_id="ws", note_id="gone")
        update_log.append_updates(conn, note_id, [writer.type(c) for c in "abc"])
        update_log.append_updates(conn, "short", [other.type("x")])
        update_log.append_updates(conn, "gone", [Writer().type(c) for c in "xyz"])
        notes.delete_note(conn, "gone")
    seen = []
    totals = compaction.compact_notes(db, min_updates=2, progress=seen.append)
    assert [(s.note_id, s.done, s.total, s.finished) for s in seen] == [
        ("gone", 0, 2, False),
        ("gone", 0, 2, True),
        (note_id, 1, 2, False),
        (note_id, 1, 2, True),
    ]
    assert isinstance(seen[1].error, NotFoundError) and seen[3].result is not None
    assert [r.note_id for r in totals.results] == [note_id]
    assert totals.as_dict() == {
        "notes": 1,
        "skipped": [{"note_id": "gone", "reason": "note 'gone' not found"}],
        "rows_before": 3,
        "rows_after": 1,
        "bytes_before": seen[3].result.bytes_before,
        "bytes_after": seen[3].result.bytes_after,
        "deleted": 3,
    }
    assert count_rows(db, note_updates, "short") == 1  # below min_updates: left alone
    assert body(db, note_id) == "abc"
