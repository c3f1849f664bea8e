"""RoomRegistry: the live rooms. Opens each note once however many connections race for it,
loads it from storage before anything is synced, and unloads it when the last connection has
left and everything it received is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pycrdt

from crdt import document
from persistence import notes
from persistence.engine import Database
from persistence.errors import StoreError

from . import closecodes
from .connection import Connection
from .persister import Persister
from .room import Room
from .settings import Settings

log = logging.getLogger("coscribe.registry")


class NoteUnavailable(Exception):
    """The note cannot be opened; `code` is the close code to give the client."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Stats:
    loads: int = 0
    unloads: int = 0
    load_failures: int = 0


class RoomRegistry:
    def __init__(self, db: Database, settings: Settings, persister: Persister) -> None:
        self.db = db
        self.settings = settings
        self.persister = persister
        self.rooms: dict[str, Room] = {}
        self.stats = Stats()
        self._opening: dict[str, asyncio.Future[Room]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self.closing = False

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="room ticker")

    # --- join / leave ---------------------------------------------------------------------

    async def join(self, note_id: str, connection: Connection) -> Room:
        """Add a connection to the note's room, opening the room if needed. The note must
        exist: the websocket endpoint admits the connection (creating the note) first."""
        room = await self._acquire(note_id)
        # Nothing awaits between the check and the join: the limit is exact.
        if len(room.connections) >= self.settings.max_connections_per_note:
            raise NoteUnavailable(closecodes.TRY_AGAIN_LATER, "too many connections to this note")
        room.join(connection)
        return room

    @contextlib.asynccontextmanager
    async def borrow(self, note_id: str) -> AsyncIterator[Room]:
        """The note's live room, held open for a server-side edit (REST, restore).

        Edits made through it reach connected editors at once and are stored by the same
        group commit as theirs. The note must exist: borrowing never creates one.
        """
        room = await self._acquire(note_id)
        room.leases += 1
        try:
            yield room
        finally:
            room.leases -= 1
            if room.idle:
                await self._unload_if_idle(room)

    async def _acquire(self, note_id: str) -> Room:
        while True:
            if self.closing:
                raise NoteUnavailable(closecodes.GOING_AWAY, "server shutting down")
            room = self.rooms.get(note_id)
            if room is None:
                room = await asyncio.shield(self._open_once(note_id))
            # The room may have been unloaded while we waited: use only the registered one.
            # Nothing awaits between this check and the caller attaching to the room.
            if self.rooms.get(note_id) is room:
                return room

    def live(self, note_id: str) -> Room | None:
        return self.rooms.get(note_id)

    def close_note(self, note_id: str, code: int) -> int:
        """Disconnect every client of a note (deleted, access revoked). Returns how many."""
        room = self.rooms.get(note_id)
        if room is None:
            return 0
        connections = list(room.connections)
        for connection in connections:
            connection.abort(code)
            room.leave(connection)
        return len(connections)

    def _open_once(self, note_id: str) -> asyncio.Future[Room]:
        future = self._opening.get(note_id)
        if future is None:
            future = asyncio.ensure_future(self._open(note_id))
            self._opening[note_id] = future
            future.add_done_callback(lambda _: self._opening.pop(note_id, None))
        return future

    async def _open(self, note_id: str) -> Room:
        try:
            doc, log_rows, size, workspace_id = await asyncio.to_thread(self._load, note_id)
        except NoteUnavailable:
            raise
        except Exception as exc:
            self.stats.load_failures += 1
            log.exception("loading note %s failed", note_id)
            raise NoteUnavailable(closecodes.INTERNAL, "the note could not be loaded") from exc
        self.stats.loads += 1
        room = Room(
            note_id,
            doc,
            awareness_timeout_s=self.settings.awareness_timeout_s,
            on_dirty=self.persister.mark,
            size=size,
            max_bytes=self.settings.max_note_bytes,
            workspace_id=workspace_id,
        )
        room.log_rows = log_rows
        self.rooms[note_id] = room
        log.debug("opened %r", room)
        return room

    def _load(self, note_id: str) -> tuple[pycrdt.Doc, int, int, str]:
        """Runs in a worker thread. Returns the doc, the rows of its update log, its stored
        size in bytes and its workspace."""
        with self.db.read() as conn:
            note = notes.find_note(conn, note_id)
            if note is None:
                raise NoteUnavailable(closecodes.NOTE_NOT_FOUND, f"note {note_id} not found")
            stored = notes.load_note(conn, note_id)
        updates = [update for _, update in stored.updates]
        size = len(stored.state or b"") + sum(map(len, updates))
        return document.load(stored.state, updates), len(updates), size, note["workspace_id"]

    async def leave(self, room: Room, connection: Connection) -> None:
        room.leave(connection)
        if room.idle:
            await self._unload_if_idle(room)

    async def _unload_if_idle(self, room: Room) -> None:
        if room.dirty:
            await self.persister.flush(room)
        # Re-check after the await: someone may have joined, or written, meanwhile.
        if room.idle and not room.dirty and self.rooms.get(room.note_id) is room:
            del self.rooms[room.note_id]
            room.close()
            self.stats.unloads += 1
            log.debug("unloaded %r", room)

    async def _tick(self) -> None:
        """Every second: expire awareness states, and unload rooms nobody joined."""
        while True:
            await asyncio.sleep(1)
            for room in list(self.rooms.values()):
                room.expire_awareness()
                if self.settings.auto_version_interval_s and room.wants_version(
                    self.settings.auto_version_interval_s
                ):
                    await self._auto_version(room)
                if room.idle and not room.dirty:
                    await self._unload_if_idle(room)

    async def _auto_version(self, room: Room) -> None:
        room.mark_versioned()
        if not await self.persister.flush(room, timeout=self.settings.shutdown_timeout_s):
            return  # storage is failing; the next tick tries again

        def version() -> None:
            with self.db.begin() as conn:
                notes.create_version(conn, room.note_id, kind="auto")

        try:
            await asyncio.to_thread(version)
        except StoreError as exc:
            log.warning("automatic version of note %s failed: %s", room.note_id, exc)

    # --- shutdown -------------------------------------------------------------------------

    async def shutdown(self, timeout: float) -> bool:
        """Close every connection with 1001, then store everything. False if not all stored."""
        self.closing = True
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        connections = [c for room in self.rooms.values() for c in room.connections]
        # Clients that do not answer the close in time are left behind: storing comes first.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.gather(
                    *(c.close(closecodes.GOING_AWAY) for c in connections), return_exceptions=True
                )
        stored = await self.persister.flush(timeout=timeout)
        unsaved = [room.note_id for room in self.rooms.values() if room.dirty]
        if unsaved:
            log.error("shutting down with unsaved updates in notes: %s", ", ".join(unsaved))
        return stored and not unsaved
