"""Cheap counters and histograms that the busy paths update, and server/metrics.py reads.

They are plain ints and lists, updated on the event loop with no lock and no allocation: a
broadcast costs one `observe` and three additions however many sockets it reaches, and a frame
received one dictionary increment. prometheus_client's own metric types take a lock on every
update, and would be one more registry to keep apart per app; /metrics turns these into its
families when it is scraped (server/metrics.py).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence

# Seconds: a broadcast to a few sockets takes microseconds, to thousands a few milliseconds.
FANOUT_BUCKETS_S = (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5)
# Seconds: one group commit of the update log (a transaction), on SQLite or PostgreSQL.
FLUSH_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Updates in one group commit.
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class Histogram:
    """Counts per bucket (upper bounds, the last one +Inf) and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (`le` is inclusive).
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """[(le, count of observations <= le)], as the Prometheus format wants them."""
        buckets, total = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            buckets.append((bound, total))
        return buckets


class Traffic:
    """Websocket traffic of one server: what its rooms broadcast and its sockets received."""

    def __init__(self) -> None:
        self.broadcasts = 0  # messages broadcast to a room
        self.frames_out = 0  # ... times the sockets each was written to
        self.bytes_out = 0  # ... and their payload bytes
        self.fanout = Histogram(FANOUT_BUCKETS_S)
        self.messages_in: Counter[str] = Counter()  # by message type
        self.bytes_in = 0

    def broadcast(self, nbytes: int, recipients: int, seconds: float) -> None:
        self.broadcasts += 1
        self.frames_out += recipients
        self.bytes_out += nbytes * recipients
        self.fanout.observe(seconds)

    def received(self, kind: str, nbytes: int) -> None:
        self.messages_in[kind] += 1
        self.bytes_in += nbytes


# Rooms built without a server (tests, tools) count into this one, which nothing reads.
UNCOUNTED = Traffic()
