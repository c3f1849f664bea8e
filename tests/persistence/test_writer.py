"""persistence.writer on real databases: the one thread that runs the persister's transactions."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from persistence import notes, update_log
from persistence.engine import Database
from persistence.errors import NotFoundError
from persistence.schema import note_updates
from persistence.writer import Writer, WriterStopped
from tests.persistence.store_helpers import T0, new_workspace

TIMEOUT = 10


# The shared `db` fixture, on the two databases the writer is for.
pytestmark = pytest.mark.parametrize("db", ["sqlite", "postgres"], indirect=True)


def make_notes(db: Database, count: int) -> list[str]:
    workspace = new_workspace(db)
    with db.begin() as conn:
        return [
            notes.create_note(conn, workspace_id=workspace, note_id=f"note-{i}")["id"]
            for i in range(count)
        ]


def stored(db: Database, note_id: str) -> list[tuple[int, bytes]]:
    with db.read() as conn:
        rows = conn.execute(
            sa.select(note_updates.c.seq, note_updates.c.update)
            .where(note_updates.c.note_id == note_id)
            .order_by(note_updates.c.seq)
        )
        return [(seq, bytes(update)) for seq, update in rows]


def append(batch: dict[str, list[bytes]]):
    return lambda conn: update_log.append(conn, batch, now=T0)


async def eventually(check, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_batches_are_stored_in_the_order_they_were_submitted(db: Database):
    note_ids = make_notes(db, 3)
    writer = Writer(db)
    try:
        futures = [
            writer.submit(
                append({n: [f"{n}:{i}:{k}".encode() for k in range(3)] for n in note_ids})
            )
            for i in range(40)
        ]
        results = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)
    finally:
        writer.stop(TIMEOUT)
    assert all(not result.failures for result in results)
    for note_id in note_ids:
        seqs = [seq for result in results for seq in result.seqs[note_id]]
        assert seqs == list(range(1, 121))
        expected = [f"{note_id}:{i}:{k}".encode() for i in range(40) for k in range(3)]
        assert stored(db, note_id) == list(zip(range(1, 121), expected, strict=True))
    assert writer.stats.jobs == 40 and writer.stats.errors == 0


async def test_the_connection_is_held_while_there_is_work_and_released_when_idle(db: Database):
    (note_id,) = make_notes(db, 1)
    writer = Writer(db, idle_release_s=0.3)
    pool = db.engine.pool
    before = pool.checkedout()
    try:
        for i in range(5):
            await asyncio.wait_for(writer.submit(append({note_id: [b"x%d" % i]})), TIMEOUT)
        assert writer.holding and pool.checkedout() == before + 1
        assert writer.stats.checkouts == 1  # one connection for every batch
        started = time.monotonic()
        await eventually(lambda: not writer.holding, "the idle writer to release its connection")
        assert time.monotonic() - started >= 0.2
        assert pool.checkedout() == before and writer.stats.releases == 1
        # Work again: a connection is taken again.
        await asyncio.wait_for(writer.submit(append({note_id: [b"again"]})), TIMEOUT)
        assert writer.stats.checkouts == 2
    finally:
        writer.stop(TIMEOUT)
    assert pool.checkedout() == before
    assert [u for _, u in stored(db, note_id)] == [b"x0", b"x1", b"x2", b"x3", b"x4", b"again"]


async def test_an_error_reaches_its_caller_and_the_thread_goes_on(db: Database):
    (note_id,) = make_notes(db, 1)
    writer = Writer(db)

    def half_then_fail(conn: sa.Connection) -> None:
        update_log.append(conn, {note_id: [b"rolled back"]}, now=T0)
        raise ValueError("the job's own bug")

    def bad_sql(conn: sa.Connection) -> None:
        conn.exec_driver_sql("INSERT INTO no_such_table VALUES (1)")

    def missing(conn: sa.Connection) -> list[int]:
        return update_log.append_updates(conn, "no-such-note", [b"x"], now=T0)

    try:
        first = writer.submit(half_then_fail)
        second = writer.submit(bad_sql)
        third = writer.submit(missing)
        fourth = writer.submit(append({note_id: [b"kept"]}))
        with pytest.raises(ValueError, match="the job's own bug"):
            await asyncio.wait_for(first, TIMEOUT)
        with pytest.raises(sa.exc.DBAPIError):
            await asyncio.wait_for(second, TIMEOUT)
        with pytest.raises(NotFoundError):
            await asyncio.wait_for(third, TIMEOUT)
        assert (await asyncio.wait_for(fourth, TIMEOUT)).seqs == {note_id: [1]}
        assert writer.running
    finally:
        writer.stop(TIMEOUT)
    # The failed jobs' transactions were rolled back, the seq counter with them.
    assert stored(db, note_id) == [(1, b"kept")]
    assert writer.stats.errors == 3


async def test_a_kept_connection_the_database_dropped_costs_no_failed_job(db: Database):
    # The database restarted while the writer kept its connection between jobs: the next
    # job finds it dead, and runs again on a fresh one instead of failing (which reported a
    # storage outage after the database was back, and kept the edits waiting a retry).
    if db.driver != "postgres":
        pytest.skip("SQLite connections are not dropped by a server")
    (note_id,) = make_notes(db, 1)
    writer = Writer(db, idle_release_s=60)
    try:
        backend = await asyncio.wait_for(
            writer.submit(lambda conn: conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()),
            TIMEOUT,
        )
        with db.begin() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        result = await asyncio.wait_for(writer.submit(append({note_id: [b"after"]})), TIMEOUT)
        assert result.seqs == {note_id: [1]} and not result.failures
        # A job that fails on a fresh connection is not run again.
        with pytest.raises(sa.exc.DBAPIError):
            await asyncio.wait_for(
                writer.submit(lambda conn: conn.exec_driver_sql("SELECT no_such_column")),
                TIMEOUT,
            )
    finally:
        writer.stop(TIMEOUT)
    assert stored(db, note_id) == [(1, b"after")]
    assert (writer.stats.retries, writer.stats.errors) == (1, 1)


async def test_stop_runs_every_submitted_job_then_ends_the_thread(db: Database):
    (note_id,) = make_notes(db, 1)
    writer = Writer(db)
    futures = [writer.submit(append({note_id: [b"u%d" % i]})) for i in range(30)]
    assert await asyncio.to_thread(writer.stop, TIMEOUT)
    assert not writer.running and not writer.holding
    assert db.engine.pool.checkedout() == 0
    results = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)
    assert [r.seqs[note_id] for r in results] == [[i] for i in range(1, 31)]
    assert len(stored(db, note_id)) == 30
    with pytest.raises(WriterStopped):
        writer.submit(append({note_id: [b"late"]}))
    # A stopped writer can be started again (a second run of the same persister).
    writer.start()
    try:
        await asyncio.wait_for(writer.submit(append({note_id: [b"late"]})), TIMEOUT)
    finally:
        writer.stop(TIMEOUT)
    assert len(stored(db, note_id)) == 31


async def test_an_append_in_progress_does_not_block_rows_that_reference_its_note(db: Database):
    """On PostgreSQL the counter UPDATE takes FOR NO KEY UPDATE on the note row: another
    appender of the note waits for it, but an insert referencing the note (a snapshot, whose
    foreign key takes FOR KEY SHARE) does not."""
    if db.driver != "postgres":
        pytest.skip("SQLite has one writer: there are no row locks to look at")
    (note_id,) = make_notes(db, 1)
    with db.begin() as holder:
        update_log.append(holder, {note_id: [b"open"]}, now=T0)
        with db.begin() as other:
            other.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            row = update_log.snapshot_row(note_id, 0, b"\0\0", b"\0", "manual", None, T0)
            assert update_log.insert_snapshot(other, row) > 0
        with db.begin() as other:
            other.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
            result = update_log.append(other, {note_id: [b"second"]}, now=T0)
        assert "lock timeout" in str(result.failures[note_id])
