"""Services: everything one server process runs, built once, started once, stopped once.

The app keeps one Services object (``services(app)``) instead of loose ``app.state``
attributes. ``start`` launches the background loops; ``stop`` is the shutdown sequence of
DESIGN section 8: stop the loops, close every connection (1001) and store every update (with a
timeout), and only then stop the flusher. The runner's signal path and the app's lifespan
both call ``stop``; the second call waits for the first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa
from starlette.applications import Starlette

from persistence.engine import Database

from .addresses import Addresses
from .auth import Authenticator
from .cluster.bus import Bus
from .feed import Feed
from .health import STORAGE_ERRORS, StorageHealth
from .indexer import Indexer
from .loops import Background, every
from .metrics import Metrics
from .persister import Persister
from .registry import RoomRegistry
from .sessions import SessionWatch
from .settings import Settings
from .webhooks import WebhookWorker
from .worker import Worker

log = logging.getLogger("coscribe")

TICK_S = 1.0


@dataclass
class Services:
    settings: Settings
    db: Database
    health: StorageHealth
    auth: Authenticator
    addresses: Addresses
    worker: Worker
    persister: Persister
    rooms: RoomRegistry
    watch: SessionWatch
    indexer: Indexer
    feed: Feed
    webhooks: WebhookWorker
    bus: Bus | None = None
    metrics: Metrics = field(init=False)
    # HTTP requests answered, by (method, route template, status): server/app.py counts.
    http: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    loops: Background = field(default_factory=lambda: Background(log))
    flusher: Background = field(default_factory=lambda: Background(log))
    _stopping: asyncio.Task[bool] | None = None

    def __post_init__(self) -> None:
        self.metrics = Metrics(self)

    @classmethod
    def build(cls, settings: Settings, db: Database) -> Services:
        health = StorageHealth()
        worker = Worker(db, settings)
        persister = Persister(
            db,
            window_s=settings.flush_window_ms / 1000,
            retry_max_s=settings.flush_retry_max_ms / 1000,
            compact_after=settings.compact_after_updates,
            health=health,
            on_compaction_queued=worker.wake,
        )
        rooms = RoomRegistry(db, settings, persister)
        persister.on_note_gone = rooms.note_gone
        feed = Feed(db, poll_s=settings.feed_poll_ms / 1000)
        webhook_worker = WebhookWorker(db, settings)
        indexer = Indexer(db, settings, rooms)
        persister.on_stored = indexer.noted
        bus = None
        if settings.redis_url is not None:
            # What an instance answers another's state vector with may be a whole note.
            bus = Bus(settings, rooms.rooms, max_entry_bytes=settings.max_note_bytes)
            bus.on_peer_dead = rooms.store_missing
            rooms.bus = bus
        services = cls(
            settings=settings,
            db=db,
            health=health,
            auth=Authenticator(db, enabled=settings.auth),
            addresses=Addresses(),
            worker=worker,
            persister=persister,
            rooms=rooms,
            watch=SessionWatch(db, rooms, settings.auth_recheck_s),
            bus=bus,
            indexer=indexer,
            feed=feed,
            webhooks=webhook_worker,
        )
        indexer.on_events = services.events_written
        return services

    def events_written(self) -> None:
        """This process appended events: stream them and deliver them now, not at the next
        poll (other processes' events arrive by polling the table)."""
        self.feed.wake()
        self.webhooks.wake()

    def start(self) -> None:
        self.metrics.start()
        self.flusher.spawn("persister", self.persister.run())
        self.loops.spawn("room ticker", every(TICK_S, self.rooms.tick, log=log, what="room tick"))
        self.loops.spawn(
            "storage probe",
            every(self.settings.storage_probe_s, self.probe, log=log, what="storage probe"),
        )
        self.loops.spawn(
            "session watch",
            every(self.settings.auth_recheck_s, self.watch.check, log=log, what="session watch"),
        )
        self.loops.spawn("worker", self.worker.run())
        if self.bus is not None:
            self.loops.spawn("cluster reader", self.bus.read())
            self.loops.spawn("cluster writer", self.bus.write())
            self.loops.spawn("cluster heartbeat", self.bus.beat())
        self.loops.spawn("indexer", self.indexer.run())
        self.loops.spawn("search catch-up", self._catch_up())
        self.loops.spawn("change feed", self.feed.run())
        if self.db.driver == "postgres":  # other processes' events wake the feed at once
            self.loops.spawn("change feed listener", self.feed.listen())
        self.loops.spawn("webhook worker", self.webhooks.run())

    async def _catch_up(self) -> None:
        """Index what is stale at start, then every search_catchup_s."""
        try:
            await self.indexer.catch_up()
        except STORAGE_ERRORS as exc:  # the loop below tries again
            log.warning("search catch-up at start failed: %s", str(exc).splitlines()[0][:300])
        await every(
            self.settings.search_catchup_s,
            self.indexer.catch_up,
            log=log,
            what="search catch-up",
        )

    async def probe(self) -> None:
        """SELECT 1, bounded. A failure makes the storage failing; a success makes it ok
        only when no note is waiting to be stored (a full disk still reads)."""

        def select() -> None:
            with self.db.read() as conn:
                conn.execute(sa.text("SELECT 1"))

        try:
            async with asyncio.timeout(self.settings.storage_wait_s):
                await asyncio.to_thread(select)
        except (TimeoutError, sa.exc.SQLAlchemyError, OSError) as exc:
            self.health.failed(exc, write=False)
            return
        if not self.persister.failing_notes:
            self.health.succeeded()

    @property
    def stopped(self) -> bool:
        return self._stopping is not None

    async def stop(self) -> bool:
        """Shut down once; True if every update was stored. Later calls share the result."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        return await asyncio.shield(self._stopping)

    async def _stop(self) -> bool:
        self.feed.close()
        await self.loops.stop()
        stored = await self.rooms.shutdown(self.settings.shutdown_timeout_s)
        if self.bus is not None:  # after the rooms: their clients' goodbyes go out too
            await self.bus.close()
        await self.flusher.stop()
        # The last edits were just stored: index them and send their events now (a crash
        # instead leaves them to the catch-up at the next start).
        try:
            async with asyncio.timeout(self.settings.shutdown_timeout_s):
                await self.indexer.flush()
        except TimeoutError:
            log.warning("indexing the last edits timed out; the next start catches up")
        self.indexer.close()
        self.worker.close()
        self.webhooks.close()
        await asyncio.to_thread(self.metrics.stop)  # waits out the port's poll interval
        log.info("rooms closed, %s", "every update stored" if stored else "UPDATES NOT STORED")
        return stored


def services(app: Starlette) -> Services:
    """The Services of an app built by create_app."""
    return app.state.services
