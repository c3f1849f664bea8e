"""GET /metrics: the server's counters in the Prometheus text format (prometheus_client).

Every app has a CollectorRegistry of its own (tests run several apps in one process), holding
one collector that reads, at scrape time, the counters the server keeps anyway: the rooms and
persister, the websocket traffic and HTTP requests (server/counters.py), the worker, the
authenticator, storage health; and, from the database, the background jobs by state. Nothing
is updated for the sake of metrics on the busy paths beyond server/counters.py.

The collector runs in a worker thread (rendering and the database query stay off the event
loop) and reads the in-memory state through the loop (`run_coroutine_threadsafe`), where it
is only ever changed, so it never sees a dict change size under it.

/metrics on the server's port takes an admin token (any caller when auth is off). With
COSCRIBE_METRICS_PORT set, the same registry is also served without a token on 127.0.0.1 at
that port, for a scraper on the same machine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from persistence import schema
from persistence.stores.background_tasks import STATUSES

from .counters import Histogram
from .health import STORAGE_ERRORS

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from .services import Services

log = logging.getLogger("coscribe.metrics")

SNAPSHOT_TIMEOUT_S = 5.0
COMPACTION_KINDS = ("compact_note", "compact")


class Metrics:
    """The registry of one app and the collector that fills it."""

    def __init__(self, app: Services) -> None:
        self.app = app
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # type: ignore[arg-type]
        self.loop: asyncio.AbstractEventLoop | None = None
        self._port_server: WSGIServer | None = None

    def start(self) -> None:
        """On the event loop, as the server starts."""
        self.loop = asyncio.get_running_loop()
        port = self.app.settings.metrics_port
        if port:
            from prometheus_client import start_http_server

            try:
                self._port_server, _thread = start_http_server(
                    port, addr="127.0.0.1", registry=self.registry
                )
            except OSError as exc:
                # An extra way in, not the server's purpose: say so loudly and serve on.
                log.error(
                    "COSCRIBE_METRICS_PORT: cannot listen on 127.0.0.1:%d (%s); /metrics on the "
                    "main port (admin token) still works",
                    port,
                    exc,
                )
                return
            log.info("metrics served without a token on http://127.0.0.1:%d/metrics", port)

    def stop(self) -> None:
        if self._port_server is not None:
            self._port_server.shutdown()
            self._port_server.server_close()
            self._port_server = None

    async def render(self) -> bytes:
        return await asyncio.to_thread(generate_latest, self.registry)

    # --- the collector (in a worker thread) ---------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        if self.loop is None or self.loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self._snapshot(), self.loop)
        live = future.result(SNAPSHOT_TIMEOUT_S)
        yield from _families(live)
        yield from self._jobs()

    async def _snapshot(self) -> dict[str, Any]:
        """Everything in memory, copied on the event loop."""
        app = self.app
        rooms, persister, traffic = app.rooms, app.persister, app.rooms.traffic
        return {
            "sockets": sum(app.addresses.open.values()),
            "connections": sum(len(room.connections) for room in rooms.rooms.values()),
            "rooms": len(rooms.rooms),
            "idle_rooms": rooms.idle_rooms,
            "room_loads": rooms.stats.loads,
            "room_unloads": rooms.stats.unloads,
            "room_load_failures": rooms.stats.load_failures,
            "messages_in": dict(traffic.messages_in),
            "bytes_in": traffic.bytes_in,
            "broadcasts": traffic.broadcasts,
            "frames_out": traffic.frames_out,
            "bytes_out": traffic.bytes_out,
            "fanout": _copy(traffic.fanout),
            "flush_seconds": _copy(persister.flush_seconds),
            "flush_updates": _copy(persister.flush_updates),
            "stored_updates": persister.stats.updates,
            "stored_bytes": persister.stats.bytes,
            "flush_failures": persister.stats.failures,
            "dropped_updates": persister.stats.dropped,
            "unsaved_updates": persister.unsaved_updates,
            "unsaved_notes": persister.unsaved_notes,
            "failed_writes": app.health.failed_writes,
            "storage_ok": app.health.ok,
            "jobs": dict(app.worker.outcomes),
            "refusals": dict(app.auth.refusals),
            "http": dict(app.http),
        }

    def _jobs(self) -> Iterator[Metric]:
        """Background tasks by state, from the database (a failed query leaves them out)."""
        table = schema.background_tasks
        try:
            with self.app.db.read() as conn:
                counts = dict(
                    conn.execute(
                        sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
                    ).all()
                )
        except STORAGE_ERRORS as exc:
            log.warning("metrics: job counts unavailable: %s", str(exc).splitlines()[0])
            return
        family = GaugeMetricFamily(
            "coscribe_jobs", "Background tasks in the database, by state.", labels=["state"]
        )
        for state in sorted({*STATUSES, *counts}):
            family.add_metric([state], counts.get(state, 0))
        yield family


def _copy(histogram: Histogram) -> Histogram:
    copy = Histogram(histogram.bounds)
    copy.counts, copy.sum = list(histogram.counts), histogram.sum
    return copy


def _gauge(name: str, help: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help, value=value)


def _counter(name: str, help: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help, value=value)


def _histogram(name: str, help: str, histogram: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(
        name, help, buckets=histogram.cumulative(), sum_value=histogram.sum
    )


def _labelled(
    name: str, help: str, labels: list[str], values: dict[Any, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def _families(live: dict[str, Any]) -> Iterator[Metric]:
    yield _gauge("coscribe_websockets", "Open websockets (admitted or not yet).", live["sockets"])
    yield _gauge("coscribe_connections", "Websockets joined to a room.", live["connections"])
    rooms = GaugeMetricFamily("coscribe_rooms", "Loaded rooms (notes).", labels=["state"])
    rooms.add_metric(["active"], live["rooms"] - live["idle_rooms"])
    rooms.add_metric(["idle"], live["idle_rooms"])
    yield rooms
    yield _counter("coscribe_room_loads", "Rooms loaded from storage.", live["room_loads"])
    yield _counter("coscribe_room_unloads", "Rooms unloaded.", live["room_unloads"])
    yield _counter(
        "coscribe_room_load_failures", "Room loads that failed.", live["room_load_failures"]
    )
    yield _labelled(
        "coscribe_ws_messages_received",
        "Websocket messages received, by message type.",
        ["type"],
        {_MESSAGE_TYPES.get(kind, "other"): n for kind, n in live["messages_in"].items()},
    )
    yield _counter(
        "coscribe_ws_received_bytes", "Bytes of websocket messages received.", live["bytes_in"]
    )
    yield _counter(
        "coscribe_broadcasts",
        "Messages broadcast to a room (updates, awareness).",
        live["broadcasts"],
    )
    yield _counter(
        "coscribe_broadcast_frames",
        "Frames written to websockets by broadcasts (messages times recipients).",
        live["frames_out"],
    )
    yield _counter(
        "coscribe_broadcast_bytes",
        "Bytes written to websockets by broadcasts (payload times recipients).",
        live["bytes_out"],
    )
    yield _histogram(
        "coscribe_broadcast_fanout_seconds",
        "Time to write one broadcast to every socket of its room.",
        live["fanout"],
    )
    yield _counter(
        "coscribe_updates_stored", "Document updates stored in the log.", live["stored_updates"]
    )
    yield _counter(
        "coscribe_update_bytes_stored", "Bytes of updates stored in the log.", live["stored_bytes"]
    )
    yield _histogram(
        "coscribe_flush_seconds",
        "Duration of one group commit of the update log.",
        live["flush_seconds"],
    )
    yield _histogram(
        "coscribe_flush_batch_updates", "Updates in one group commit.", live["flush_updates"]
    )
    yield _gauge(
        "coscribe_unsaved_updates", "Updates applied and not yet stored.", live["unsaved_updates"]
    )
    yield _gauge(
        "coscribe_unsaved_notes", "Notes with updates not yet stored.", live["unsaved_notes"]
    )
    yield _counter(
        "coscribe_failed_writes", "Database writes that failed (storage).", live["failed_writes"]
    )
    yield _counter(
        "coscribe_flush_failures",
        "Failed attempts to store a note's updates (each is retried).",
        live["flush_failures"],
    )
    yield _gauge(
        "coscribe_storage_up", "1 while the database takes writes, else 0.", live["storage_ok"]
    )
    jobs: dict[tuple[str, str], int] = live["jobs"]
    yield _labelled(
        "coscribe_jobs_finished",
        "Background tasks this server ran, by kind and outcome (succeeded, retried, failed).",
        ["kind", "outcome"],
        jobs,
    )
    compactions: dict[str, int] = {}
    for (kind, outcome), n in jobs.items():
        if kind in COMPACTION_KINDS:
            compactions[outcome] = compactions.get(outcome, 0) + n
    yield _labelled(
        "coscribe_compactions",
        "Compaction jobs this server ran, by outcome.",
        ["outcome"],
        compactions,
    )
    yield _labelled(
        "coscribe_auth_refusals",
        "Requests and websockets refused for their token, by reason.",
        ["reason"],
        live["refusals"],
    )
    yield _labelled(
        "coscribe_http_requests",
        "HTTP requests answered, by method, route template and status.",
        ["method", "route", "status"],
        {(method, route, str(status)): n for (method, route, status), n in live["http"].items()},
    )


_MESSAGE_TYPES = {
    "SyncStep1": "sync_step1",
    "SyncStep2": "sync_step2",
    "SyncUpdate": "update",
    "AwarenessUpdate": "awareness",
    "QueryAwareness": "query_awareness",
    "AuthDenied": "auth",
}
