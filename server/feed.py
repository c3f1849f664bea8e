"""The change feed: one reader of the event log per process, fanning events out to the
Server-Sent Events streams of ``GET /api/events``.

The event log table is the truth (persistence/events.py): ids commit in order, so reading
``id > last`` never skips one, whichever process wrote it. One task reads new events every
``feed_poll_ms``, and at once when this process wrote some (``wake``) or, on PostgreSQL, when
another process did (its NOTIFY, ``listen``), and hands them to every open stream, so a
thousand streams cost one query per batch, not a thousand.

A stream subscribes first, then reads what it missed from the table (Last-Event-ID), then
takes the live events, skipping those it already sent: nothing falls between the two. A
stream that cannot keep up (its buffer of ``STREAM_BUFFER`` events is full) is not slowed
down for: it drops its buffer and reads from the table again, where everything still is.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from persistence import events
from persistence.engine import POSTGRES_CONNECT_ARGS, Database

from .health import STORAGE_ERRORS
from .loops import Failures

log = logging.getLogger("coscribe.feed")

READ_BATCH = 500
STREAM_BUFFER = 1000
RETRY_MS = 2000  # what an EventSource waits before reconnecting after the stream ends


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(STREAM_BUFFER)
    )
    overflowed: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, event: dict[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
        self.wake.set()


class Feed:
    def __init__(self, db: Database, *, poll_s: float) -> None:
        self.db = db
        self.poll_s = poll_s
        self.head = 0  # the last event id this process has read and dispatched
        self.subscribers: set[Subscriber] = set()
        self.reads = 0
        self.closed = False
        self._wake = asyncio.Event()
        self._head_known = False  # head is read from the table once, at start
        self._failures = Failures(log, "reading the change feed")
        self._listen_failing = False  # said once when LISTEN fails, once when it works again

    def wake(self) -> None:
        """Events were just written by this process: read them now."""
        self._wake.set()

    async def listen(self) -> None:
        """On PostgreSQL: wake on every NOTIFY of the event channel, whichever process
        appended the events (until cancelled). While the database is unreachable it says so
        once, polling carries on, and it says so again once it listens again."""
        import psycopg  # only with PostgreSQL (a SQLite server never loads it)

        while True:
            try:
                await self._listen()
            except psycopg.Error as exc:
                if not self._listen_failing:
                    self._listen_failing = True
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    log.warning(
                        "listening for other instances' events failed (%s); polling every "
                        "%gs until it works again",
                        first[:300],
                        self.poll_s,
                    )
                await asyncio.sleep(self.poll_s)

    async def _listen(self) -> None:
        """One connection of its own, outside the pool, LISTENing on the event loop: being
        cancelled (shutdown) ends it at once, where a thread would wait out a timeout."""
        import psycopg

        engine = self.db.engine
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        # The pool's timeouts and keepalives too: a silent server ends this connection (and
        # the feed falls back to polling until it listens again) instead of leaving it mute.
        kwargs = {**POSTGRES_CONNECT_ARGS, **kwargs, "autocommit": True}
        async with await psycopg.AsyncConnection.connect(*args, **kwargs) as conn:
            await conn.execute(f"LISTEN {events.NOTIFY_CHANNEL}")
            if self._listen_failing:
                self._listen_failing = False
                log.warning("listening for other instances' events works again")
            # Events may have come while nobody listened: read the table now.
            self._wake.set()
            async for _ in conn.notifies():
                self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                if not self._head_known:
                    self.head = await asyncio.to_thread(self._last_id)
                    self._head_known = True
                while await self._read_once():
                    pass
            except STORAGE_ERRORS as exc:
                self._failures.failed(exc)
            else:
                self._failures.succeeded()
            self._wake.clear()
            try:
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _last_id(self) -> int:
        with self.db.read() as conn:
            return events.last_id(conn)

    async def _read_once(self) -> bool:
        """Dispatch the next batch; True if there may be more."""
        rows = await asyncio.to_thread(self.read, self.head, READ_BATCH)
        self.reads += 1
        for row in rows:
            self.head = row["id"]
            for subscriber in self.subscribers:
                subscriber.offer(row)
        return len(rows) == READ_BATCH

    def read(
        self, after: int, limit: int = READ_BATCH, workspace_ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Events after ``after`` from the table (on a worker thread)."""
        with self.db.read() as conn:
            return events.read(conn, after, limit=limit, workspace_ids=workspace_ids)

    def close(self) -> None:
        """Shutting down: every stream ends (its client reconnects to another instance or
        after the restart, resuming with Last-Event-ID)."""
        self.closed = True
        for subscriber in self.subscribers:
            subscriber.wake.set()

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)


def sse(event: str | None, data: Any, event_id: int | None = None) -> bytes:
    """One Server-Sent Events message (JSON data holds no newline, so one data line)."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(lines) + "\n\n").encode()


@dataclass
class StreamOptions:
    after: int  # send events with ids above this
    visible: Callable[[dict[str, Any]], bool]  # may this stream see the event?
    diff: bool  # include "changed" events' patches
    keepalive_s: float
    still_allowed: Callable[[], Awaitable[bool]]  # the token is still good (checked on keepalive)
    workspace_ids: list[str] | None = None  # narrows the table reads (None: every workspace)
    notice: bytes = b""  # sent first (a resync event)
    follow: bool = True  # False: end once caught up with the table


async def stream(feed: Feed, options: StreamOptions) -> AsyncIterator[bytes]:
    """The bytes of one SSE response, until the client goes or its token stops working."""
    subscriber = feed.subscribe()
    try:
        yield f"retry: {RETRY_MS}\n\n".encode() + options.notice
        sent = options.after
        while True:
            # Catch up from the table: everything after what was sent, however old.
            subscriber.overflowed = False
            while True:
                rows = await asyncio.to_thread(feed.read, sent, READ_BATCH, options.workspace_ids)
                chunk = []
                for row in rows:
                    sent = row["id"]
                    if options.visible(row):
                        chunk.append(_message(row, options.diff))
                if chunk:
                    yield b"".join(chunk)
                if len(rows) < READ_BATCH:
                    break
            if not options.follow:
                return
            # Live: what the feed hands over, until the buffer overflows (then read again).
            while not subscriber.overflowed:
                if feed.closed:
                    return
                chunk = []
                while not subscriber.queue.empty():
                    row = subscriber.queue.get_nowait()
                    if row["id"] <= sent:
                        continue  # already sent from the table
                    sent = row["id"]
                    if options.visible(row):
                        chunk.append(_message(row, options.diff))
                if chunk:
                    yield b"".join(chunk)
                    continue
                subscriber.wake.clear()
                try:
                    async with asyncio.timeout(options.keepalive_s):
                        await subscriber.wake.wait()
                except TimeoutError:
                    if not await options.still_allowed():
                        yield sse("end", {"reason": "the token no longer gives access"})
                        return
                    yield b": keepalive\n\n"
            while not subscriber.queue.empty():
                subscriber.queue.get_nowait()
    finally:
        feed.unsubscribe(subscriber)


def _message(row: dict[str, Any], diff: bool) -> bytes:
    return sse(row["kind"], events.message(row, diff=diff), row["id"])
