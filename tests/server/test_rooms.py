"""Rooms, the registry and the persister in-process, with in-memory channels for sockets."""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator

import pycrdt
import pytest
import sqlalchemy as sa

from crdt import protocol
from persistence import notes, tokens, update_log
from persistence.stores import workspaces
from server import closecodes
from server.auth import OPEN, Principal
from server.connection import Connection
from server.loops import Background
from server.output import QueuedOutput
from server.persister import Persister
from server.registry import NoteUnavailable, RoomRegistry
from server.sessions import SessionWatch
from server.settings import Settings
from tests.yclient import eventually


class Channel:
    """What a socket would carry: the frames sent to one client, and its close code."""

    def __init__(self, note_id: str, name: str, principal: Principal = OPEN) -> None:
        self.frames: list[bytes] = []
        self.closed_with: int | None = None
        self.connection = Connection(
            note_id,
            name,
            QueuedOutput(self._send),
            self._close,
            max_bytes=1 << 20,
            principal=principal,
        )

    async def _send(self, frame: bytes) -> None:
        self.frames.append(frame)

    async def _close(self, code: int, reason: str) -> None:
        self.closed_with = code

    def messages(self) -> list[protocol.Message]:
        return [protocol.decode(frame) for frame in self.frames]


@contextlib.asynccontextmanager
async def running_rooms(db, window_s: float = 0.005) -> AsyncIterator[RoomRegistry]:
    """A registry and its running persister; shut down (everything stored) on the way out."""
    persister = Persister(db, window_s=window_s, retry_max_s=0.2)
    # Rooms unload when their last user leaves (the grace has tests of its own, live).
    registry = RoomRegistry(db, Settings(room_unload_grace_s=0), persister)
    persister.on_note_gone = registry.note_gone
    flusher = Background(logging.getLogger("test"))
    flusher.spawn("persister", persister.run())
    try:
        yield registry
        await registry.shutdown(5)
    finally:
        await flusher.stop()


@pytest.fixture
async def rooms(db):
    async with running_rooms(db) as registry:
        yield registry


def new_note(db, note_id: str) -> None:
    """Rooms open existing notes only (the websocket endpoint creates them)."""
    with db.begin() as conn:
        workspaces.ensure_default(conn)
        notes.create_note(conn, workspace_id="default", note_id=note_id)


def update(text: str) -> bytes:
    doc = pycrdt.Doc()
    doc.get("content", type=pycrdt.Text).insert(0, text)
    return doc.get_update()


async def test_join_sends_step1_and_existing_awareness(rooms, db):
    new_note(db, "n1")
    first = Channel("n1", "first")
    room = await rooms.join("n1", first.connection)
    await eventually(lambda: first.frames, what="step1")
    assert isinstance(first.messages()[0], protocol.SyncStep1)
    entry = protocol.AwarenessEntry(42, 1, {"user": "ann"})
    room.receive(
        first.connection, protocol.decode(protocol.awareness(protocol.awareness_payload([entry])))
    )
    second = Channel("n1", "second")
    await rooms.join("n1", second.connection)
    await eventually(lambda: len(second.frames) >= 2, what="awareness for the newcomer")
    assert second.messages()[1].entries == (entry,)
    await rooms.leave(room, first.connection)
    await eventually(
        lambda: any(
            isinstance(m, protocol.AwarenessUpdate) and m.entries[0].state is None
            for m in second.messages()
        ),
        what="removal of the leaver's awareness",
    )


def break_table(db, table: str, broken: bool) -> None:
    """A real failing database call: the table is renamed away (and back)."""
    old, new = (table, f"{table}_away") if broken else (f"{table}_away", table)
    with db.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))


async def test_a_room_is_never_unloaded_while_its_updates_are_unstored(rooms, db):
    new_note(db, "fragile")
    channel = Channel("fragile", "editor")
    room = await rooms.join("fragile", channel.connection)
    break_table(db, "note_updates", broken=True)  # storing its updates now fails
    room.apply(update("precious"))
    await rooms.leave(room, channel.connection)  # waits storage_wait_s at most
    await eventually(lambda: rooms.persister.stats.failures >= 2, what="failed retries")
    assert rooms.persister.dirty("fragile")
    assert rooms.rooms.get("fragile") is room, "a dirty room must stay loaded"
    # The database comes back: the retry stores the update and a tick unloads the room.
    break_table(db, "note_updates", broken=False)
    assert await rooms.persister.flush("fragile", timeout=5)
    await rooms.tick()
    assert "fragile" not in rooms.rooms
    with db.begin() as conn:
        assert (
            str(update_log.load_doc(conn, "fragile").get("content", type=pycrdt.Text)) == "precious"
        )


async def test_updates_are_stored_in_group_commits(rooms, db):
    new_note(db, "batch")
    channel = Channel("batch", "writer")
    room = await rooms.join("batch", channel.connection)
    flushes_before = rooms.persister.stats.flushes
    for n in range(50):
        room.apply(update(f"{n};"))
    await rooms.persister.flush("batch", timeout=5)
    assert rooms.persister.stats.flushes - flushes_before <= 2, "50 updates, one or two batches"
    with db.begin() as conn:
        assert len(update_log.load_note(conn, "batch").updates) == 50


async def test_waiting_for_storage_cuts_a_long_window_short(db):
    # flush() (a room unloading, a restore, shutdown) must not wait out the group commit
    # window: with a window of 10 s, the update is stored at once and the batch window was
    # really 10 s for edits nobody waits for.
    async with running_rooms(db, window_s=10) as registry:
        persister = registry.persister
        new_note(db, "hurry")
        channel = Channel("hurry", "editor")
        room = await registry.join("hurry", channel.connection)
        room.apply(update("first"))
        await asyncio.sleep(0.2)  # the flusher is now inside its window
        assert persister.dirty("hurry"), "stored before the window ended: proves nothing"
        started = time.monotonic()
        assert await persister.flush("hurry", timeout=5)
        assert time.monotonic() - started < 2
        with db.begin() as conn:
            assert len(update_log.load_note(conn, "hurry").updates) == 1
        # Edits nobody waits for still wait for the window.
        room.apply(update("second"))
        await asyncio.sleep(0.5)
        assert persister.dirty("hurry")
    # Shutting down waited for storage too.
    with db.begin() as conn:
        assert len(update_log.load_note(conn, "hurry").updates) == 2


async def test_load_failure_stores_nothing_and_serves_nothing(rooms, db):
    with db.begin() as conn:
        workspaces.ensure_default(conn)
        notes.create_note(conn, workspace_id="default", note_id="corrupt")
        conn.execute(
            sa.text(
                'INSERT INTO note_updates (note_id, seq, "update", created_at) '
                "VALUES ('corrupt', 1, :u, CURRENT_TIMESTAMP)"
            ),
            {"u": b"\x05garbage"},
        )
    channel = Channel("corrupt", "reader")
    with pytest.raises(NoteUnavailable) as caught:
        await rooms.join("corrupt", channel.connection)
    assert caught.value.code == 1011
    assert channel.frames == [], "an empty doc must never be served for a note that has content"
    assert "corrupt" not in rooms.rooms


async def test_new_clients_get_the_whole_note_and_it_is_encoded_once_per_change(rooms, db):
    new_note(db, "crowd")
    writer = Channel("crowd", "writer")
    room = await rooms.join("crowd", writer.connection)
    room.receive(writer.connection, protocol.decode(protocol.sync_update(update("first"))))
    joiners = [Channel("crowd", f"joiner {i}") for i in range(3)]
    for joiner in joiners:
        await rooms.join("crowd", joiner.connection)
        room.receive(joiner.connection, protocol.SyncStep1(b"\x00"))
    whole = room._whole
    assert whole is not None
    # Another change: the next new client gets it too.
    room.receive(writer.connection, protocol.decode(protocol.sync_update(update("second"))))
    late = Channel("crowd", "late")
    await rooms.join("crowd", late.connection)
    room.receive(late.connection, protocol.SyncStep1(b"\x00"))
    assert room._whole is not whole

    def text_of(channel: Channel) -> str:
        doc = pycrdt.Doc()
        text = doc.get("content", type=pycrdt.Text)
        for message in channel.messages():
            if isinstance(message, protocol.SyncStep2):
                doc.apply_update(message.update)
        return str(text)

    await eventually(lambda: all(text_of(j) for j in [*joiners, late]))
    assert {text_of(j) for j in joiners} == {"first"}
    assert sorted(text_of(late)) == sorted("firstsecond")


async def test_what_is_stored_and_sent_is_what_the_doc_gained(rooms, db):
    """An update all new is passed on as sent; a repeat, or the part of an update the doc had
    already, is neither stored nor sent again."""
    new_note(db, "gained")
    channel = Channel("gained", "reader")
    room = await rooms.join("gained", channel.connection)
    writer = pycrdt.Doc()
    text = writer.get("content", type=pycrdt.Text)
    text.insert(0, "abc")
    first = writer.get_update()
    room.apply(first)
    room.apply(first)  # a repeat: nothing new
    state = writer.get_state()
    text.insert(3, "def")
    overlapping = writer.get_update()  # "abc" again, and "def"
    room.apply(overlapping)
    await rooms.persister.flush("gained", timeout=5)
    with db.begin() as conn:
        stored = [u for _, u in update_log.load_note(conn, "gained").updates]
    assert stored[0] == first
    assert stored[1:] == [pycrdt.get_update(overlapping, state)]
    await eventually(lambda: str(room.doc.get("content", type=pycrdt.Text)) == "abcdef")
    sent = [m.update for m in channel.messages() if isinstance(m, protocol.SyncUpdate)]
    replay = pycrdt.Doc()
    for update_ in sent:
        replay.apply_update(update_)
    assert str(replay.get("content", type=pycrdt.Text)) == "abcdef"
    assert sum(len(u) for u in sent) < len(first) + len(overlapping)


async def test_the_session_watch_judges_only_the_tokens_it_looked_up(rooms, db):
    # A socket admitted while a round's lookup is on its thread must not be taken for revoked:
    # its token was not in the lookup, so it is not in the answer either.
    new_note(db, "n1")
    with db.begin() as conn:
        workspaces.ensure_default(conn)
        doomed = tokens.issue(conn, "editor", workspace="default").row["id"]
        late = tokens.issue(conn, "editor", workspace="default").row["id"]
    first = Channel("n1", "first", Principal("editor", "default", doomed))
    await rooms.join("n1", first.connection)
    looking, answer = threading.Event(), threading.Event()

    class Slow(SessionWatch):
        def _lookup(self, token_ids, note_ids):
            looking.set()
            answer.wait(5)
            return super()._lookup(token_ids, note_ids)

    with db.begin() as conn:
        tokens.revoke(conn, doomed)
    watch = Slow(db, rooms, 1)
    check = asyncio.create_task(watch.check())
    await asyncio.to_thread(looking.wait, 5)
    second = Channel("n1", "second", Principal("editor", "default", late))
    await rooms.join("n1", second.connection)
    answer.set()
    assert await check == 1
    await eventually(lambda: first.closed_with == closecodes.UNAUTHORIZED, what="4401")
    assert second.closed_with is None
    assert second.connection in rooms.live("n1").connections
    # The next round looks the late token up, finds it valid and leaves it alone.
    assert await SessionWatch(db, rooms, 1).check() == 0
    assert second.closed_with is None
