"""Persister: the sink that stores what rooms' documents changed, by group commit.

Rooms publish each update here (synchronously, on the loop). One flusher task waits a short
window for more to arrive, then stores every waiting note's updates in ONE transaction (with a
per-note fallback, so one bad note cannot sink the others). SQLite has a single writer, so one
transaction per window is both the fastest and the fairest way to share it. A note is in at
most one batch at a time, which keeps its updates in order.

Batches are written by the persister's Writer (persistence/writer.py): one thread that lives as
long as the flusher, keeps its connection while batches come, and answers on the loop. No
thread-pool hand-off and no pool checkout per batch, and append's statements are made once.

The persister owns everything about storing: what is pending, what is in flight, how long each
note's log is (to queue compactions), and each note's retry backoff. A failed write goes back
to the front of its note's queue and is retried after a delay that doubles up to a ceiling;
edits arriving meanwhile join the queue but do not trigger attempts, so an outage costs one
attempt per backoff step, and two log lines per note (failing, recovered). A note with
anything unstored is "dirty", and the registry never unloads a dirty room.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from persistence import update_log
from persistence.engine import Database
from persistence.errors import NotFoundError
from persistence.writer import Writer

from .counters import BATCH_BUCKETS, FLUSH_BUCKETS_S, Histogram
from .health import STORAGE_ERRORS, StorageHealth
from .jobs import enqueue_compactions
from .room import Room

log = logging.getLogger("coscribe.persister")

FIRST_RETRY_S = 0.1
# How long stopping waits for a batch being written (a statement is bounded by the
# connection's own timeouts; this only keeps shutdown from hanging on a stuck one).
STOP_TIMEOUT_S = 10.0


@dataclass
class Stats:
    flushes: int = 0
    updates: int = 0
    bytes: int = 0
    failures: int = 0  # failed write attempts, counted per note
    dropped: int = 0  # updates of deleted notes, dropped


@dataclass
class _Log:
    """One note's unstored updates and retry state."""

    note_id: str
    pending: list[bytes] = field(default_factory=list)
    in_flight: list[bytes] = field(default_factory=list)
    rows: int = 0  # rows in its stored update log (after its snapshot)
    delay: float = 0.0  # current backoff step; 0 when the last write worked
    retrying: bool = False  # a retry is scheduled: new updates wait for it
    failed_at: float = 0.0  # monotonic time of the first failure of the current outage
    attempts: int = 0  # failed attempts in the current outage

    @property
    def dirty(self) -> bool:
        return bool(self.pending or self.in_flight)


class Persister:
    def __init__(
        self,
        db: Database,
        *,
        window_s: float,
        retry_max_s: float,
        compact_after: int = 0,
        health: StorageHealth | None = None,
        on_compaction_queued: Callable[[], None] | None = None,
        on_note_gone: Callable[[str], None] | None = None,
        on_stored: Callable[[str], None] | None = None,
    ) -> None:
        self.db = db
        self.window_s = window_s
        self.retry_max_s = retry_max_s
        self.compact_after = compact_after
        self.health = health or StorageHealth()
        self.on_compaction_queued = on_compaction_queued
        self.on_note_gone = on_note_gone
        # Told of each note whose updates a flush stored (the search indexer): once per note
        # per flush, after the commit, never per update.
        self.on_stored = on_stored
        self.stats = Stats()
        # Each group commit's duration and size, for /metrics.
        self.flush_seconds = Histogram(FLUSH_BUCKETS_S)
        self.flush_updates = Histogram(BATCH_BUCKETS)
        self.writer = Writer(db, name="persister's writer")
        self.stop_timeout_s = STOP_TIMEOUT_S
        self._logs: dict[str, _Log] = {}
        self._ready: set[str] = set()  # notes with pending updates and no retry scheduled
        self._busy = False  # a batch is being written
        self._wake = asyncio.Event()
        # Someone waits for storage (flush()): skip the window, or end one already begun.
        self._hurry = asyncio.Event()
        self._cycle = asyncio.Condition()

    # --- the sink ---------------------------------------------------------------------------

    def publish(self, room: Room, update: bytes) -> None:
        entry = self._logs.get(room.note_id)
        if entry is None:
            entry = self._logs[room.note_id] = _Log(room.note_id)
        entry.pending.append(update)
        if not entry.retrying:
            self._ready.add(room.note_id)
            self._wake.set()

    # --- bookkeeping the registry asks about -------------------------------------------------

    def track(self, note_id: str, log_rows: int) -> None:
        """A note was loaded: its stored log holds log_rows rows."""
        entry = self._logs.get(note_id)
        if entry is None:
            self._logs[note_id] = _Log(note_id, rows=log_rows)
        else:
            entry.rows = log_rows

    def forget(self, note_id: str) -> None:
        """A room was unloaded: drop a clean note's bookkeeping."""
        entry = self._logs.get(note_id)
        if entry is not None and not entry.dirty:
            del self._logs[note_id]

    def dirty(self, note_id: str) -> bool:
        entry = self._logs.get(note_id)
        return entry is not None and entry.dirty

    @property
    def unsaved_notes(self) -> int:
        return sum(1 for entry in self._logs.values() if entry.dirty)

    @property
    def unsaved_updates(self) -> int:
        return sum(len(e.pending) + len(e.in_flight) for e in self._logs.values())

    @property
    def failing_notes(self) -> int:
        return sum(1 for entry in self._logs.values() if entry.attempts)

    # --- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        """The flusher: runs until cancelled, and never dies of an error. The writer thread
        lives as long as it does (stop after flush: nothing is left to write then)."""
        self.writer.start()
        try:
            await self._loop()
        finally:
            # At once unless a batch is being written (the flusher was cancelled mid-write):
            # that one is finished, not abandoned; waited for off the loop.
            await asyncio.to_thread(self.writer.stop, self.stop_timeout_s)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            if not self._hurry.is_set():
                await self._window()
            self._wake.clear()
            self._hurry.clear()
            batch = [self._logs[n] for n in self._ready if n in self._logs]
            self._ready.clear()
            batch = [entry for entry in batch if entry.pending and not entry.in_flight]
            if batch:
                try:
                    await self._flush(batch)
                except Exception:  # a bug, not the database: keep the updates, keep going
                    log.exception("storing a batch of %d notes failed unexpectedly", len(batch))
                    for entry in batch:
                        self._failed(entry, "internal error")
            async with self._cycle:
                self._cycle.notify_all()

    async def _window(self) -> None:
        """Let the batch fill up for window_s, unless someone waits for it (flush())."""
        try:
            async with asyncio.timeout(self.window_s):
                await self._hurry.wait()
        except TimeoutError:
            pass

    async def flush(self, note_id: str | None = None, timeout: float | None = None) -> bool:
        """Wait until the note (or every note) has nothing unstored. False on timeout."""

        def unstored() -> list[_Log]:
            if note_id is not None:
                entry = self._logs.get(note_id)
                return [entry] if entry is not None and entry.dirty else []
            return [entry for entry in self._logs.values() if entry.dirty]

        async def wait() -> None:
            async with self._cycle:
                while waiting := unstored():
                    # Skip the batching window, but never a failing note's backoff.
                    if any(e.note_id in self._ready for e in waiting) or self._busy:
                        self._wake.set()
                        self._hurry.set()
                    await self._cycle.wait()

        try:
            async with asyncio.timeout(timeout):
                await wait()
        except TimeoutError:
            return False
        return True

    async def _flush(self, batch: list[_Log]) -> None:
        writes = {}
        for entry in batch:
            entry.in_flight, entry.pending = entry.pending, []
            writes[entry.note_id] = entry.in_flight
        self._busy = True
        started = time.perf_counter()
        try:
            failures = await self._write(writes)
        finally:
            self._busy = False
        self.flush_seconds.observe(time.perf_counter() - started)
        self.flush_updates.observe(sum(map(len, writes.values())))
        self.stats.flushes += 1
        to_compact = []
        for entry in batch:
            error = failures.get(entry.note_id)
            if error is None:
                self._stored(entry)
                if self.compact_after and entry.rows >= self.compact_after:
                    to_compact.append(entry)
            elif isinstance(error, NotFoundError):
                self._gone(entry)
            else:
                self._failed(entry, error)
        if len(failures) < len(batch):
            self.health.succeeded()
        if to_compact:
            await self._queue_compactions(to_compact)

    async def _write(self, batch: dict[str, list[bytes]]) -> dict[str, BaseException]:
        """One transaction for the whole batch, on the writer thread (update_log.append
        writes it note by note if it fails as a whole, so one bad note cannot sink the rest)."""
        try:
            return await self.writer.submit(functools.partial(_append, batch))
        except STORAGE_ERRORS as exc:  # the transaction itself (connect, commit) failed
            return dict.fromkeys(batch, exc)

    # --- outcomes -------------------------------------------------------------------------------

    def _stored(self, entry: _Log) -> None:
        self.stats.updates += len(entry.in_flight)
        self.stats.bytes += sum(map(len, entry.in_flight))
        entry.rows += len(entry.in_flight)
        if entry.attempts:
            log.warning(
                "note %s: storing recovered after %d failed attempts in %.1fs; %d updates stored",
                entry.note_id,
                entry.attempts,
                time.monotonic() - entry.failed_at,
                len(entry.in_flight),
            )
        entry.in_flight = []
        entry.delay = 0.0
        entry.attempts = 0
        if self.on_stored is not None:
            self.on_stored(entry.note_id)

    def _failed(self, entry: _Log, error: BaseException | str) -> None:
        """Put the updates back in order and retry after the note's next backoff step."""
        self.stats.failures += 1
        self.health.failed(error)
        # Keep the order: what was in flight goes back before anything newer.
        entry.pending = entry.in_flight + entry.pending
        entry.in_flight = []
        if not entry.attempts:
            entry.failed_at = time.monotonic()
            expected = isinstance(error, (str, *STORAGE_ERRORS))
            log.warning(
                "note %s: storing failing (%s); %d updates kept in memory, retrying with "
                "backoff up to %gs",
                entry.note_id,
                _first_line(error),
                len(entry.pending),
                self.retry_max_s,
                exc_info=None if expected else error,  # type: ignore[arg-type]
            )
        entry.attempts += 1
        entry.delay = min(max(entry.delay * 2, FIRST_RETRY_S), self.retry_max_s)
        entry.retrying = True
        self._ready.discard(entry.note_id)  # edits that came during the write wait too
        asyncio.get_running_loop().call_later(entry.delay, self._retry, entry.note_id)

    def _retry(self, note_id: str) -> None:
        entry = self._logs.get(note_id)
        if entry is None:
            return
        entry.retrying = False
        if entry.pending:
            self._ready.add(note_id)
            self._wake.set()

    def _gone(self, entry: _Log) -> None:
        """The note was deleted (or purged) while edits waited: nobody can store them."""
        dropped = len(entry.in_flight) + len(entry.pending)
        self.stats.dropped += dropped
        log.warning("note %s was deleted: dropping %d unsaved updates", entry.note_id, dropped)
        entry.in_flight, entry.pending = [], []
        entry.attempts = 0
        if self.on_note_gone is not None:
            self.on_note_gone(entry.note_id)

    async def _queue_compactions(self, entries: list[_Log]) -> None:
        try:
            await asyncio.to_thread(enqueue_compactions, self.db, [e.note_id for e in entries])
        except STORAGE_ERRORS as exc:
            # Not urgent: the threshold is checked again at the next flush.
            log.warning("queueing compactions failed: %s", _first_line(exc))
            return
        for entry in entries:
            entry.rows = 0  # the job will fold them into a snapshot
        if self.on_compaction_queued is not None:
            self.on_compaction_queued()


def _append(batch: dict[str, list[bytes]], conn: sa.Connection) -> dict[str, BaseException]:
    """Runs on the writer thread, in its transaction."""
    result = update_log.append(conn, batch)
    if result.batch_error is not None:
        log.debug(
            "batch of %d notes failed (%s); stored them one by one",
            len(batch),
            result.batch_error,
        )
    return dict(result.failures)


def _first_line(error: BaseException | str) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
