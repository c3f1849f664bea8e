"""Background work and storage failures, in-process against a real database.

A failing database call is made real by renaming a table away under the running code (and
back): every loop must log the failure once, go on, and pick up again when the table returns.
"""

from __future__ import annotations

import asyncio
import logging

import pycrdt
import pytest
import sqlalchemy as sa

from persistence import notes, update_log, versions
from persistence.stores import background_tasks, workspaces
from server.connection import Connection
from server.health import StorageHealth, StorageUnavailable
from server.loops import Background, every
from server.output import QueuedOutput
from server.persister import Persister
from server.registry import RoomRegistry
from server.settings import Settings
from server.worker import Worker
from tests.yclient import eventually

RETRY_MAX_S = 0.2


def break_table(db, table: str, broken: bool) -> None:
    """A real failing database call: the table is renamed away (and back)."""
    old, new = (table, f"{table}_away") if broken else (f"{table}_away", table)
    with db.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))


def new_note(db, note_id: str) -> None:
    with db.begin() as conn:
        workspaces.ensure_default(conn)
        notes.create_note(conn, workspace_id="default", note_id=note_id)


def update(text: str) -> bytes:
    doc = pycrdt.Doc()
    doc.get("content", type=pycrdt.Text).insert(0, text)
    return doc.get_update()


def stored_text(db, note_id: str) -> str:
    with db.read() as conn:
        return str(update_log.load_doc(conn, note_id).get("content", type=pycrdt.Text))


class Channel:
    def __init__(self, note_id: str) -> None:
        self.frames: list[bytes] = []
        self.closed_with: int | None = None
        self.connection = Connection(
            note_id, "test", QueuedOutput(self._send), self._close, max_bytes=1 << 22
        )

    async def _send(self, frame: bytes) -> None:
        self.frames.append(frame)

    async def _close(self, code: int, reason: str) -> None:
        self.closed_with = code


@pytest.fixture
async def rooms(db):
    settings = Settings(storage_wait_s=1, auto_version_interval_s=1)
    health = StorageHealth()
    persister = Persister(db, window_s=0.005, retry_max_s=RETRY_MAX_S, health=health)
    registry = RoomRegistry(db, settings, persister)
    persister.on_note_gone = registry.note_gone
    background = Background(logging.getLogger("test"))
    background.spawn("persister", persister.run())
    yield registry
    await registry.shutdown(2)
    await background.stop()


def lines(caplog, *words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if all(w in r.getMessage() for w in words)]


async def test_an_outage_costs_one_attempt_per_backoff_step_and_two_log_lines(rooms, db, caplog):
    caplog.set_level(logging.INFO)
    new_note(db, "busy")
    channel = Channel("busy")
    room = await rooms.join("busy", channel.connection)
    break_table(db, "note_updates", broken=True)
    words = [f"w{n} " for n in range(200)]
    started = asyncio.get_running_loop().time()
    for word in words:  # an editor typing through the outage, one update every 5 ms
        room.apply(update(word))
        await asyncio.sleep(0.005)
    elapsed = asyncio.get_running_loop().time() - started
    attempts = rooms.persister.stats.failures
    # Backoff 0.1, 0.2, 0.2, ... s: about elapsed / 0.2 attempts, whatever the edit rate.
    assert 2 <= attempts <= elapsed / RETRY_MAX_S + 4, (attempts, elapsed)
    assert rooms.persister.unsaved_updates == len(words)
    assert not rooms.persister.health.ok
    break_table(db, "note_updates", broken=False)
    assert await rooms.persister.flush("busy", timeout=5)
    assert rooms.persister.health.ok
    assert len(lines(caplog, "note busy", "storing failing")) == 1
    assert len(lines(caplog, "note busy", "storing recovered")) == 1
    assert len(lines(caplog, "storage failing")) == 1
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a storage error"
    text = stored_text(db, "busy")
    assert all(word in text for word in words)


async def test_storage_health_recovers_with_the_first_successful_write(rooms, db):
    new_note(db, "health")
    room = await rooms.join("health", Channel("health").connection)
    break_table(db, "note_updates", broken=True)
    room.apply(update("a"))
    await eventually(lambda: not rooms.persister.health.ok, what="storage failing")
    assert rooms.persister.health.failed_writes >= 1
    break_table(db, "note_updates", broken=False)
    await eventually(lambda: rooms.persister.health.ok, timeout=5, what="storage ok again")


async def test_a_server_side_edit_answers_within_storage_wait_and_is_kept(rooms, db):
    new_note(db, "rest")
    await rooms.join("rest", Channel("rest").connection)  # an editor has the note open
    break_table(db, "note_updates", broken=True)
    started = asyncio.get_running_loop().time()

    def change(room):
        room.edit(lambda doc: doc.get("content", type=pycrdt.Text).insert(0, "kept"), 4)

    with pytest.raises(StorageUnavailable) as caught:
        await rooms.edit("rest", change)
    waited = asyncio.get_running_loop().time() - started
    assert waited < 1 + 1.5, f"storage_wait_s is 1 s, answered after {waited:.1f}s"
    assert caught.value.retry_after_s == 1
    assert "rest" in rooms.rooms, "the unsaved edit keeps its room loaded"
    break_table(db, "note_updates", broken=False)
    assert await rooms.persister.flush("rest", timeout=5)
    assert stored_text(db, "rest") == "kept"


async def test_a_deleted_notes_unsaved_updates_are_dropped_and_its_sockets_closed_4404(
    rooms, db, caplog
):
    caplog.set_level(logging.INFO)
    new_note(db, "doomed")
    channel = Channel("doomed")
    room = await rooms.join("doomed", channel.connection)
    break_table(db, "note_updates", broken=True)
    room.apply(update("lost"))
    await eventually(lambda: rooms.persister.stats.failures >= 1, what="a failed write")
    with db.begin() as conn:
        notes.delete_note(conn, "doomed")
    break_table(db, "note_updates", broken=False)
    await eventually(lambda: channel.closed_with == 4404, timeout=5, what="close 4404")
    assert not rooms.persister.dirty("doomed")
    assert rooms.persister.stats.dropped == 1
    assert len(lines(caplog, "note doomed was deleted: dropping 1 unsaved updates")) == 1
    await rooms.tick()
    assert "doomed" not in rooms.rooms


async def test_the_room_tick_survives_a_failing_database_and_goes_on(rooms, db, caplog):
    caplog.set_level(logging.INFO)
    new_note(db, "versioned")
    room = await rooms.join("versioned", Channel("versioned").connection)
    room.apply(update("v"))
    assert await rooms.persister.flush("versioned", timeout=5)
    break_table(db, "note_snapshots", broken=True)  # automatic versions now fail
    ticker = Background(logging.getLogger("test"))
    ticker.spawn("tick", every(0.05, rooms.tick, log=logging.getLogger("test"), what="tick"))
    try:
        room._versioned_at -= 10  # due for an automatic version (interval 1 s)
        await eventually(
            lambda: lines(caplog, "the room ticker failed"), timeout=5, what="a logged failure"
        )
        room._versioned_at -= 10
        break_table(db, "note_snapshots", broken=False)
        await eventually(
            lambda: lines(caplog, "the room ticker works again"), timeout=5, what="recovery"
        )
        with db.read() as conn:
            kinds = [v["kind"] for v in versions.list_versions(conn, "versioned")]
        assert "auto" in kinds
    finally:
        await ticker.stop()
    assert len(lines(caplog, "the room ticker failed")) == 1


async def test_the_worker_loop_and_its_heartbeat_survive_a_failing_database(db, caplog):
    caplog.set_level(logging.INFO)
    started, release = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow(ctx, payload):
        loop.call_soon_threadsafe(started.set)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(30)
        return {"ok": True}

    worker = Worker(db, Settings(worker_poll_s=1, job_lease_s=3), {"slow": slow})
    break_table(db, "background_tasks", broken=True)
    running = asyncio.ensure_future(worker.run())
    try:
        await eventually(
            lambda: lines(caplog, "the worker loop failed"), timeout=5, what="a logged failure"
        )
        break_table(db, "background_tasks", broken=False)
        with db.begin() as conn:
            job = background_tasks.enqueue(conn, "slow", {})
        worker.wake()
        await asyncio.wait_for(started.wait(), 10)
        # The job runs; its lease renewals (every 1 s) now fail, and must not kill anything.
        break_table(db, "background_tasks", broken=True)
        await eventually(
            lambda: lines(caplog, "renewing the lease of job", "failed"),
            timeout=5,
            what="a failed renewal, logged",
        )
        break_table(db, "background_tasks", broken=False)
        await eventually(
            lambda: lines(caplog, "renewing the lease of job", "works again"),
            timeout=5,
            what="a renewal working again",
        )
        release.set()

        def status() -> str:
            with db.read() as conn:
                return background_tasks.get(conn, job["id"])["status"]

        await eventually(lambda: status() == "succeeded", timeout=10, what="the job done")
        assert not running.done(), "the worker loop goes on"
    finally:
        release.set()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert len(lines(caplog, "the worker loop failed")) == 1
