"""RoomRegistry: the live rooms. Opens each note once however many connections race for it,
loads it from storage before anything is synced, and unloads it once the last connection has
left, everything it received is stored and a grace period has passed. Server-side edits
(REST, restore) go through ``edit``, which waits for storage for at most ``storage_wait_s``.

A room nobody uses stays loaded for ``room_unload_grace_s`` (like Hocuspocus's unload
debounce): a client that reconnects, or a REST edit, finds it in memory instead of paying a
load (a second for a long uncompacted log). At most ``max_idle_rooms`` are kept; past that the
longest-idle go first. An idle room is always stored: what it received was flushed when its
last user left, and a dirty room is never unloaded. A note deleted while its room is idle is
unloaded at once (``close_note``), so a later connection or read goes to storage and is told
the note is gone; every other change to a note goes through its room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import pycrdt

from crdt import document
from crdt.awareness import user_names
from crdt.validation import DepthTracker
from persistence import update_log, versions
from persistence.engine import Database
from persistence.errors import NotFoundError

from . import closecodes
from .connection import Connection
from .counters import Traffic
from .health import STORAGE_ERRORS, StorageUnavailable
from .loops import Failures
from .persister import Persister
from .room import BROADCAST, Room
from .settings import Settings

if TYPE_CHECKING:
    from .cluster.bus import Bus

T = TypeVar("T")

log = logging.getLogger("coscribe.registry")


class NoteUnavailable(Exception):
    """The note cannot be opened; `code` is the close code to give the client."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = message[:120]  # a websocket close reason is at most 123 bytes


class NoteRefused(NoteUnavailable):
    """The note holds stored content the update checks refuse (stored before they existed):
    it is never handed to pycrdt. An administrator repairs it (`coscribe notes repair`)."""

    def __init__(self, note_id: str, detail: Exception) -> None:
        super().__init__(closecodes.INTERNAL, update_log.refused_note_message(note_id, detail))
        # A close reason is at most 123 bytes: name the command, not the details.
        self.reason = f"note holds refused content: coscribe notes repair {note_id}"[:120]


@dataclass
class Stats:
    loads: int = 0
    unloads: int = 0
    load_failures: int = 0
    reuses: int = 0  # an idle room taken up again (a join or an edit) instead of a load


class RoomRegistry:
    def __init__(self, db: Database, settings: Settings, persister: Persister) -> None:
        self.db = db
        self.settings = settings
        self.persister = persister
        self.rooms: dict[str, Room] = {}
        self.stats = Stats()
        self.traffic = Traffic()
        self._tick_failures = Failures(log, "the room ticker")
        self._opening: dict[str, asyncio.Future[Room]] = {}
        # Loaded rooms nobody uses, longest idle first (a room moves to the end when it
        # becomes idle again), with when they became idle.
        self._idle: dict[str, float] = {}
        self.closing = False
        # Cluster mode (REDIS_URL): the bus is one more sink of every room, and its source of
        # other instances' updates and presence.
        self.bus: Bus | None = None

    @property
    def idle_rooms(self) -> int:
        return len(self._idle)

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
                await self._rest(room)

    async def edit(self, note_id: str, change: Callable[[Room], T]) -> T:
        """Run change(room) on the note's live room, then wait until what it changed is stored.

        The one path for server-side edits. Raises StorageUnavailable when storing takes
        longer than ``storage_wait_s``: the change stays in the room, reaches every editor,
        and is stored when the database takes writes again.
        """
        async with self.borrow(note_id) as room:
            result = change(room)
            await self.stored(note_id)
            return result

    async def stored(self, note_id: str) -> None:
        """Wait until everything the note's room changed is stored (a version, a delete
        need it), for at most ``storage_wait_s``; StorageUnavailable after that."""
        if not await self.persister.flush(note_id, timeout=self.settings.storage_wait_s):
            raise StorageUnavailable(
                f"note {note_id}: the change is applied but not stored yet (storage is "
                "failing); it is kept and will be stored",
                retry_after_s=self.settings.storage_wait_s,
            )

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
                if self._idle.pop(note_id, None) is not None:
                    self.stats.reuses += 1
                return room

    def live(self, note_id: str) -> Room | None:
        return self.rooms.get(note_id)

    def close_note(self, note_id: str, code: int) -> int:
        """Disconnect every client of a note that was deleted, and unload its room if nobody
        else holds it and it is stored (a dirty one is unloaded when the persister finds the
        note gone): what it holds must not be served again. Returns how many were closed."""
        room = self.rooms.get(note_id)
        if room is None:
            return 0
        connections = list(room.connections)
        for connection in connections:
            connection.abort(code)
            room.leave(connection)
        if room.idle and not self.persister.dirty(note_id):
            self._unload(room)
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
            stored = await asyncio.to_thread(self._read, note_id)
        except NotFoundError:
            raise NoteUnavailable(closecodes.NOTE_NOT_FOUND, f"note {note_id} not found") from None
        except STORAGE_ERRORS as exc:
            self.stats.load_failures += 1
            self.persister.health.failed(exc, write=False)
            log.warning("loading note %s failed: %s", note_id, str(exc).splitlines()[0][:300])
            raise NoteUnavailable(closecodes.INTERNAL, "the note could not be loaded") from exc
        try:
            doc, tracker = await asyncio.to_thread(self._build, stored)
        except document.UpdateRefused as exc:
            # Stored before updates were checked: pycrdt must not read it (it could crash).
            self.stats.load_failures += 1
            log.error("note %s refused on load: %s", note_id, exc)
            raise NoteRefused(note_id, exc) from exc
        except Exception as exc:
            self.stats.load_failures += 1
            log.exception("note %s: its stored content does not load", note_id)
            raise NoteUnavailable(closecodes.INTERNAL, "the note could not be loaded") from exc
        self.stats.loads += 1
        bus = self.bus
        room = Room(
            note_id,
            doc,
            awareness_timeout_s=self.settings.awareness_timeout_s,
            sinks=(BROADCAST, self.persister) if bus is None else (BROADCAST, self.persister, bus),
            relay=bus,
            size=len(stored.state or b"") + sum(len(update) for _, update in stored.updates),
            max_bytes=self.settings.max_note_bytes,
            workspace_id=stored.workspace_id,
            awareness_limits=self.settings.awareness_limits,
            tracker=tracker,
        )
        room.traffic = self.traffic
        if bus is not None:
            # Before anyone is served: what other instances have and storage may not yet.
            await bus.opened(room)
        self.persister.track(note_id, log_rows=len(stored.updates))
        self.rooms[note_id] = room
        log.debug("opened %r", room)
        return room

    def _read(self, note_id: str) -> update_log.StoredNote:
        """Runs in a worker thread: the note's row (once), snapshot and log."""
        with self.db.read() as conn:
            return update_log.load_note(conn, note_id)

    def _build(self, stored: update_log.StoredNote) -> tuple[pycrdt.Doc, DepthTracker]:
        """The doc, checked first (see document.load_tracked), and its DepthTracker."""
        return document.load_tracked(
            stored.state,
            [update for _, update in stored.updates],
            limits=self.settings.crdt_limits,
        )

    async def leave(self, room: Room, connection: Connection) -> None:
        room.leave(connection)
        if room.idle:
            await self._rest(room)

    def _became_idle(self, room: Room) -> None:
        self._idle.pop(room.note_id, None)
        self._idle[room.note_id] = time.monotonic()

    async def _rest(self, room: Room) -> None:
        """The room's last user left: store what it holds at once (skipping the batching
        window), then unload it, or keep it for the grace period."""
        self._became_idle(room)
        if self.settings.room_unload_grace_s == 0 or self.settings.max_idle_rooms == 0:
            await self._unload_if_idle(room)
            return
        if self.persister.dirty(room.note_id):
            await self.persister.flush(room.note_id, timeout=self.settings.storage_wait_s)
        self._trim_idle()

    def _trim_idle(self) -> None:
        """Past max_idle_rooms, unload the longest-idle stored rooms (a dirty one is skipped:
        the persister is storing it, and a later tick trims again)."""
        excess = len(self._idle) - self.settings.max_idle_rooms
        for note_id in list(self._idle):
            if excess <= 0:
                return
            room = self.rooms.get(note_id)
            if room is None or not room.idle:  # not idle any more: not ours to unload
                self._idle.pop(note_id, None)
                excess -= 1
            elif not self.persister.dirty(note_id):
                self._unload(room)
                excess -= 1

    async def _unload_if_idle(self, room: Room) -> None:
        """Unload an idle room once it is stored: waits for storage for at most
        storage_wait_s, and leaves a room that is still dirty to a later tick."""
        if self.persister.dirty(room.note_id):
            await self.persister.flush(room.note_id, timeout=self.settings.storage_wait_s)
        # Re-check after the await: someone may have joined, or written, meanwhile.
        if room.idle and not self.persister.dirty(room.note_id):
            self._unload(room)

    def _unload(self, room: Room) -> None:
        """Unload an idle, stored room (no await: nobody can join it meanwhile)."""
        if self.rooms.get(room.note_id) is not room:
            return
        del self.rooms[room.note_id]
        self._idle.pop(room.note_id, None)
        room.close()
        if self.bus is not None:
            self.bus.closed(room.note_id)
        self.persister.forget(room.note_id)
        self.stats.unloads += 1
        log.debug("unloaded %r", room)

    async def tick(self) -> None:
        """Run every second: expire awareness states, take automatic versions, unload idle
        rooms. One room's failure is logged and does not stop the others."""
        failed = False
        for room in list(self.rooms.values()):
            try:
                await self._tick_room(room)
            except Exception as exc:  # noqa: BLE001 - one room must not stop the others; logged
                failed = True
                self._tick_failures.failed(exc)
        self._trim_idle()
        if not failed:
            self._tick_failures.succeeded()

    async def _tick_room(self, room: Room) -> None:
        room.expire_awareness()
        interval = self.settings.auto_version_interval_s
        if interval and room.wants_version(interval):
            await self._auto_version(room)
        if room.idle:
            # Emptied without passing through leave (a revoked token, a slow client dropped).
            since = self._idle.setdefault(room.note_id, time.monotonic())
            waited = time.monotonic() - since
            if waited >= self.settings.room_unload_grace_s and not self.persister.dirty(
                room.note_id
            ):
                self._unload(room)

    async def _auto_version(self, room: Room) -> None:
        room.mark_versioned()
        # Named after who is in the note now (the names their editors publish in awareness).
        label = versions.auto_label(user_names(room.awareness.entries()))
        if not await self.persister.flush(room.note_id, timeout=self.settings.storage_wait_s):
            return  # storage is failing; the next tick tries again
        interval = self.settings.auto_version_interval_s

        def version() -> None:
            # Another process editing the note (a cluster) may have just taken it.
            with self.db.begin() as conn:
                versions.create_auto_version(conn, room.note_id, interval, label=label)

        await asyncio.to_thread(version)

    async def store_missing(self, note_ids: list[str]) -> None:
        """Store what these notes' rooms hold that storage lacks: updates applied here that
        another instance made, and died before storing. One note's failure is logged and
        does not stop the others."""
        for note_id in note_ids:
            room = self.rooms.get(note_id)
            if room is None:
                continue
            await self.persister.flush(note_id, timeout=self.settings.storage_wait_s)
            state = room.doc.get_update()

            def store(note_id: str = note_id, state: bytes = state) -> int | None:
                with self.db.begin() as conn:
                    return update_log.append_missing(
                        conn, note_id, state, self.settings.crdt_limits
                    )

            try:
                seq = await asyncio.to_thread(store)
            except NotFoundError:
                continue  # deleted meanwhile
            except (*STORAGE_ERRORS, document.InvalidUpdate, document.UpdateRefused) as exc:
                log.error("note %s: could not store what a dead instance held: %s", note_id, exc)
                continue
            if seq is not None:
                log.warning("note %s: stored updates a dead instance had not stored", note_id)

    def note_gone(self, note_id: str) -> None:
        """The persister found the note deleted: close its sockets with 4404."""
        closed = self.close_note(note_id, closecodes.NOTE_NOT_FOUND)
        if closed:
            log.info("note %s was deleted: closed its %d connections", note_id, closed)

    # --- shutdown -------------------------------------------------------------------------

    async def shutdown(self, timeout: float) -> bool:
        """Close every connection with 1001, then store everything. False if not all stored."""
        self.closing = True
        for room in self.rooms.values():
            room.send_updates()  # the last turn's edits go out before the close frames
        connections = [c for room in self.rooms.values() for c in room.connections]
        # Clients that do not answer the close in time are left behind: storing comes first.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.gather(
                    *(c.close(closecodes.GOING_AWAY) for c in connections), return_exceptions=True
                )
        stored = await self.persister.flush(timeout=timeout)
        unsaved = [note_id for note_id in self.rooms if self.persister.dirty(note_id)]
        if unsaved:
            log.error("shutting down with unsaved updates in notes: %s", ", ".join(unsaved))
        return stored and not unsaved
