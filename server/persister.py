"""Group commit of the update log.

Rooms hand their new updates over by marking themselves dirty. One flusher task waits a short
window for more to arrive, then stores every dirty room's batch in ONE transaction (a savepoint
per note, so one bad note cannot sink the others). SQLite has a single writer, so one
transaction per window is both the fastest and the fairest way to share it. A room is in at
most one batch at a time, which keeps each note's updates in order. A failed batch goes back
to its room and is retried with backoff; the room stays dirty, and a dirty room is never
unloaded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from persistence import notes
from persistence.engine import Database
from persistence.errors import StoreError

from .jobs import enqueue_compactions
from .room import Room

log = logging.getLogger("coscribe.persister")


@dataclass
class Stats:
    flushes: int = 0
    updates: int = 0
    bytes: int = 0
    failures: int = 0


class Persister:
    def __init__(
        self,
        db: Database,
        *,
        window_s: float,
        retry_max_s: float,
        compact_after: int = 0,
        on_compaction_queued: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.compact_after = compact_after
        self._on_compaction_queued = on_compaction_queued
        self.window_s = window_s
        self.retry_max_s = retry_max_s
        self.stats = Stats()
        self._dirty: dict[str, Room] = {}
        self._retry_delay: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._urgent = False
        self._cycle = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._busy: list[Room] = []  # rooms whose batch is being written
        self._waiting_retry: set[Room] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="persister")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def mark(self, room: Room) -> None:
        """A room has pending updates (called from Room, synchronously)."""
        self._waiting_retry.discard(room)
        self._dirty[room.note_id] = room
        self._wake.set()

    async def flush(self, room: Room | None = None, timeout: float | None = None) -> bool:
        """Wait until `room` (or every room) has nothing unstored. False on timeout."""

        rooms = [room] if room is not None else None

        def unstored() -> list[Room]:
            candidates = rooms or [*self._dirty.values(), *self._busy, *self._waiting_retry]
            return [r for r in candidates if r.dirty]

        async def wait() -> None:
            async with self._cycle:
                while waiting := unstored():
                    # Skip the batching window, but not a failed room's retry backoff.
                    if any(r.note_id in self._dirty for r in waiting):
                        self._urgent = True
                        self._wake.set()
                    await self._cycle.wait()

        try:
            async with asyncio.timeout(timeout):
                await wait()
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._urgent:
                await asyncio.sleep(self.window_s)  # let the batch fill up
            self._wake.clear()
            self._urgent = False
            rooms = [room for room in self._dirty.values() if room.pending and not room.in_flight]
            self._dirty = {k: r for k, r in self._dirty.items() if r not in rooms}
            if rooms:
                await self._flush(rooms)
            async with self._cycle:
                self._cycle.notify_all()

    async def _flush(self, rooms: list[Room]) -> None:
        batch = {room.note_id: room.take_pending() for room in rooms}
        self._busy = rooms
        try:
            failures = await asyncio.to_thread(self._write, batch)
        except Exception as exc:
            log.exception("storing %d notes failed", len(batch))
            failures = {note_id: exc for note_id in batch}
        finally:
            self._busy = []
        self.stats.flushes += 1
        to_compact = []
        for room in rooms:
            error = failures.get(room.note_id)
            if error is None:
                self.stats.updates += len(room.in_flight)
                self.stats.bytes += sum(map(len, room.in_flight))
                room.log_rows += len(room.in_flight)
                if self.compact_after and room.log_rows >= self.compact_after:
                    to_compact.append(room)
                room.stored()
                self._retry_delay.pop(room.note_id, None)
            else:
                self.stats.failures += 1
                room.store_failed()
                self._retry_later(room, str(error))
        if to_compact:
            await self._queue_compactions(to_compact)

    async def _queue_compactions(self, rooms: list[Room]) -> None:
        try:
            await asyncio.to_thread(enqueue_compactions, self.db, [r.note_id for r in rooms])
        except Exception:
            # Not urgent: the threshold is checked again at the next flush.
            log.exception("queueing compactions failed")
            return
        for room in rooms:
            room.log_rows = 0  # the job will fold them into a snapshot
        if self._on_compaction_queued is not None:
            self._on_compaction_queued()

    def _write(self, batch: dict[str, list[bytes]]) -> dict[str, Exception]:
        """Runs in a worker thread: one transaction with two statements for the whole batch.

        If the batch as a whole fails, it is written again note by note, each in a savepoint,
        so that one bad note cannot keep the others from being stored."""
        try:
            with self.db.begin() as conn:
                return dict(notes.append_batch(conn, batch))
        except (SQLAlchemyError, StoreError) as exc:
            log.warning("batch of %d notes failed (%s); storing them one by one", len(batch), exc)
        failed = {}
        with self.db.begin() as conn:
            for note_id, updates in batch.items():
                try:
                    with conn.begin_nested():
                        notes.append_updates(conn, note_id, updates)
                except (SQLAlchemyError, StoreError) as exc:
                    failed[note_id] = exc
        return failed

    def _retry_later(self, room: Room, error: str) -> None:
        delay = min(self._retry_delay.get(room.note_id, 0.05) * 2, self.retry_max_s)
        self._retry_delay[room.note_id] = delay
        log.error("storing note %s failed (%s); retrying in %.2fs", room.note_id, error, delay)
        self._waiting_retry.add(room)
        asyncio.get_running_loop().call_later(delay, self.mark, room)
