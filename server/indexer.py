"""Indexer: keeps the search index and the "changed" events in step with what notes hold.

It hears of a note when the persister has stored some of its updates (``noted``, called on the
loop once per flushed note, never per keystroke or on the broadcast path) and handles the note
once they pause for ``search_index_delay_ms``, or ``search_index_max_delay_ms`` after the first
of them when they do not: updates stored meanwhile ride along. A note typed into without a
pause costs an index write and a "changed" event every couple of seconds, not one per keystroke
or per flush: rendering, diffing and re-indexing a whole body is the indexer's cost, and it
grows with the note, not with the edit. The index lags a finished edit by about the delay.
Handling a batch of notes: render each one's body (the root Y.Text ``content``) from its live
room, or from storage when its room is gone, then in one transaction, off the loop, write the
index rows and one "changed" event per note whose body or version moved, with the text change
as a patch (crdt/text.py's diff against the body indexed before, computed on that thread). That
thread is the indexer's own, below the loop's priority (threads.py): it can wait, sockets can't.

The database is the truth, not this process's memory: at start and every
``search_catchup_s`` it also indexes every note whose stored log is ahead of its index entry
(edits stored by another instance or just before a crash, imported or restored notes), so a
note is never left unindexed and its "changed" event is late rather than lost.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from crdt import document, text
from persistence import events, search, update_log
from persistence.engine import Database
from persistence.errors import NotFoundError

from .health import STORAGE_ERRORS
from .loops import Failures
from .registry import RoomRegistry
from .settings import Settings
from .threads import LowPriorityThread

log = logging.getLogger("coscribe.indexer")

# A patch larger than this (characters inserted) is left out of the event: the client reads
# the note instead. Keeps the event log and webhook bodies bounded.
MAX_PATCH_CHARS = 100_000
CATCHUP_BATCH = 100
BATCH = 25
RETRY_S = 2.0


@dataclass
class Stats:
    batches: int = 0
    indexed: int = 0
    events: int = 0
    failures: int = 0
    caught_up: int = 0
    last_lag_s: float = 0.0  # from the note's first stored update to its index commit


class Indexer:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        rooms: RoomRegistry,
        on_events: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.rooms = rooms
        self.on_events = on_events
        self.delay_s = settings.search_index_delay_ms / 1000
        self.max_delay_s = max(self.delay_s, settings.search_index_max_delay_ms / 1000)
        self.stats = Stats()
        self._due: dict[str, float] = {}  # note id -> monotonic time it is handled at
        self._since: dict[str, float] = {}  # note id -> when it was first noted
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._failures = Failures(log, "indexing notes")
        # Loading, diffing and writing: work that can wait, below the loop's priority.
        self._thread = LowPriorityThread("indexer")

    # --- the persister's hook (on the loop, once per stored note) ----------------------------

    def noted(self, note_id: str) -> None:
        """The note's updates were stored: index it once they pause for the delay, and no later
        than the maximum delay after the first one not indexed yet (once, however many flushes
        come before then)."""
        now = time.monotonic()
        since = self._since.setdefault(note_id, now)
        at = min(now + self.delay_s, since + self.max_delay_s)
        due = self._due.get(note_id)
        if due is not None:
            # Later only: a retry after a failure keeps its own, later time. The loop need not
            # wake: it finds the new time when it wakes for the old one.
            if at > due:
                self._due[note_id] = at
            return
        self._due[note_id] = at
        self._idle.clear()
        self._wake.set()

    # --- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: handle due notes; never dies of an error."""
        while True:
            if not self._due:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = min(self._due.values()) - time.monotonic()
            if wait > 0:
                self._wake.clear()
                try:
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            # Notes due within the next quarter delay ride along: fewer, larger transactions
            # (a note is handled at most that much early). At most BATCH at a time: their
            # bodies are rendered on the loop, and a batch of hundreds (notes opened together
            # fall due together) held it, and the worker thread the GIL, for tens of ms.
            now = time.monotonic() + self.delay_s / 4
            ready = [note_id for note_id, at in self._due.items() if at <= now]
            if len(ready) > BATCH:
                ready = heapq.nsmallest(BATCH, ready, key=self._due.__getitem__)
            for note_id in ready:
                del self._due[note_id]
            await self._handle(ready)

    async def catch_up(self) -> int:
        """Index every note whose stored log is ahead of its index entry; how many."""
        total = 0
        while True:
            stale = await self._thread.run(self._stale)
            stale = [note_id for note_id in stale if note_id not in self._due]
            if not stale:
                return total
            done = await self._handle(stale)
            total += done
            self.stats.caught_up += done
            if done < len(stale):
                return total  # failing: the next round tries again

    async def idle(self, timeout: float) -> bool:
        """Wait until nothing is due (tests, shutdown); False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def flush(self) -> None:
        """Handle every noted note now (shutdown: after the last flush of the rooms)."""
        ready = list(self._due)
        self._due.clear()
        if ready:
            await self._handle(ready)

    def close(self) -> None:
        """After the last flush: the indexer's thread ends."""
        self._thread.close()

    def _stale(self) -> list[str]:
        with self.db.read() as conn:
            return search.stale_notes(conn, CATCHUP_BATCH)

    async def _handle(self, note_ids: list[str]) -> int:
        # Taken now: edits stored while this batch is written wait from their own time.
        since = {n: self._since.pop(n) for n in note_ids if n in self._since}
        # Bodies of live rooms are rendered here, on the loop (a string copy out of pycrdt);
        # the others are loaded from storage on the worker thread.
        bodies: dict[str, tuple[str, str] | None] = {}
        for note_id in note_ids:
            room = self.rooms.live(note_id)
            if room is None:
                bodies[note_id] = None
            else:
                body = document.body_text(room.doc)
                vector = document.state_vector(room.doc)
                bodies[note_id] = (body, _b64(vector))
        try:
            written = await self._thread.run(self._write, bodies)
        except STORAGE_ERRORS as exc:
            self.stats.failures += 1
            self._failures.failed(exc)
            retry = time.monotonic() + RETRY_S
            for note_id in note_ids:
                self._due[note_id] = max(self._due.get(note_id, retry), retry)
                if note_id in since:
                    first = min(since[note_id], self._since.get(note_id, since[note_id]))
                    self._since[note_id] = first
            return 0
        self._failures.succeeded()
        now = time.monotonic()
        for first in since.values():
            self.stats.last_lag_s = now - first
        self.stats.batches += 1
        self.stats.indexed += len(note_ids)
        self.stats.events += written
        if written and self.on_events is not None:
            self.on_events()
        return len(note_ids)

    def _write(self, bodies: dict[str, tuple[str, str] | None]) -> int:
        """On a worker thread: bodies of notes without a room are loaded in a read
        transaction, then the batch is written in one short write transaction (SQLite has one
        writer: loading documents under its lock would hold up the persister). Returns how
        many events it wrote."""
        limits = self.settings.crdt_limits
        max_chars = self.settings.search_max_indexed_chars
        stored = [note_id for note_id, live in bodies.items() if live is None]
        loaded: dict[str, tuple[str, int]] = {}
        if stored:
            with self.db.read() as conn:
                for note_id in stored:
                    found = _load(conn, note_id, limits)
                    if found is not None:
                        loaded[note_id] = found
        batch: list[tuple[str, str, int | None]] = []
        vectors: dict[str, str] = {}
        for note_id, live in bodies.items():
            if live is not None:
                body, vectors[note_id] = live
                batch.append((note_id, body, None))
            elif note_id in loaded:
                batch.append((note_id, *loaded[note_id]))
        with self.db.begin() as conn:
            changes = []
            results = search.index_notes(conn, batch, max_chars=max_chars)
            for (note_id, body, _), result in zip(batch, results, strict=True):
                if result is None or result.deleted:
                    continue
                # A first indexing of an empty note is no change; after that, a new body or
                # a new version (other roots than the body changed) is.
                same_body = body == (result.previous or "")
                before = result.previous_version
                if same_body and (before is None or result.version == before):
                    continue
                data = _changed(result, body, vectors.get(note_id))
                changes.append((result.workspace_id, note_id, "changed", data))
            # Last in the transaction: the event counter's row lock is held until commit.
            events.append_many(conn, changes)
            return len(changes)


def _load(conn: sa.Connection, note_id: str, limits: Any) -> tuple[str, int] | None:
    """A note's body and the last_seq it includes, from storage (None: gone, deleted or
    refused). One statement reads the snapshot and the log, and last_seq comes with it."""
    try:
        stored = update_log.load_note(conn, note_id)
        doc = document.load(stored.state, [u for _, u in stored.updates], limits=limits)
    except NotFoundError:
        return None
    except (document.UpdateRefused, document.InvalidUpdate) as exc:
        log.warning("note %s not indexed: its stored content is refused (%s)", note_id, exc)
        return None
    return document.body_text(doc), stored.last_seq


def _changed(result: search.Indexed, body: str, vector: str | None) -> dict[str, Any]:
    """A "changed" event's data: the new version, and the patch from the body before."""
    data: dict[str, Any] = {"version": result.version}
    if vector is not None:
        data["state_vector"] = vector
    if result.previous is None:
        edits = [(0, 0, body)] if body else []
    else:
        edits = text.diff(result.previous, body)
    if sum(len(insert) for _, _, insert in edits) > MAX_PATCH_CHARS:
        data["patch"] = None
        data["patch_omitted"] = "too large: read the note's content"
    else:
        data["patch"] = [
            {"position": position, "delete": count, "insert": insert}
            for position, count, insert in edits
        ]
    data["length"] = len(body)
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
