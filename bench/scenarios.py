"""The scenarios: what each one runs in the load generator and which figures it reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import ROOT

DATA = ROOT / "tests" / "fixtures"
TRACE = DATA / "editing-traces" / "sequential_traces" / "automerge-paper.json.gz"
SEED = DATA / "yrs-bench-input" / "b4-update.bin"
SEED_TEXT_NAME = "text"
SEED_CHARS = 104_852


@dataclass(frozen=True)
class Scenario:
    key: str  # a100, a500, b, c, d
    group: str  # a, b, c, d: what --scenarios selects
    title: str
    loadgen: str  # loadgen scenario name
    args: dict[str, Any]
    # (label, metric key, format) rows for the table
    rows: tuple[tuple[str, str, str], ...]
    timeout_s: float


WRITE_ROWS = (
    ("delivered updates/s", "delivered_per_s", "{:,.0f}"),
    ("fan-out latency p50 (ms)", "latency_p50_ms", "{:.1f}"),
    ("fan-out latency p99 (ms)", "latency_p99_ms", "{:.1f}"),
    ("delivered / expected", "delivery_ratio", "{:.1%}"),
    ("disconnected clients", "disconnects", "{:d}"),
)
COMMON_ROWS = (
    ("server CPU s (cores busy)", "server_cpu", "{}"),
    ("server peak RSS (MB)", "server_rss_mb", "{:.0f}"),
    ("load generator CPU s", "loadgen_cpu_s", "{:.1f}"),
    ("server waited for a CPU (run queue), s", "server_runqueue_wait_s", "{:.2f}"),
    ("other processes' CPU meanwhile (cores)", "others_cores", "{:.2f}"),
)


def scenarios(quick: bool) -> list[Scenario]:
    waves = {"wave-size": 10, "wave-ms": 100}
    duration = 3 if quick else 15
    readers_small, readers_big = (20, 50) if quick else (100, 500)
    rooms = 20 if quick else 200
    joiners = 20 if quick else 100
    fanout_timeout = 60 + duration + 30
    # (a) twice: the same room with fewer and with more readers.
    fanout = [
        Scenario(
            key,
            "a",
            f"(a) one room, 1 writer + {readers} readers, update every 10 ms for {duration} s",
            "fanout",
            {**waves, "readers": readers, "interval-ms": 10, "duration-s": duration},
            WRITE_ROWS + COMMON_ROWS,
            fanout_timeout + readers / 10 * 1.0,
        )
        for key, readers in (("a100", readers_small), ("a500", readers_big))
    ]
    return [
        *fanout,
        Scenario(
            "b",
            "b",
            f"(b) {rooms} rooms x 4 clients, every client writes every 500 ms for {duration} s",
            "rooms",
            {
                **waves,
                "rooms": rooms,
                "per-room": 4,
                "interval-ms": 500,
                "duration-s": duration,
            },
            WRITE_ROWS + COMMON_ROWS,
            fanout_timeout + rooms * 4 / 10 * 1.0,
        ),
        Scenario(
            "c",
            "c",
            "(c) automerge-paper trace replay, 100 edits per update"
            + (" (first 20,000 edits)" if quick else " (259,778 edits)"),
            "trace",
            {
                "trace": str(TRACE),
                "batch": 100,
                "limit": 20_000 if quick else 0,
                "timeout-s": 60 if quick else 240,
                "wave-ms": 100,
            },
            (
                ("time until 2nd client has final text (s)", "time_to_final_s", "{:.2f}"),
                ("edits/s through the server", "edits_per_s", "{:,.0f}"),
                ("updates sent (frames)", "updates", "{:,d}"),
                *COMMON_ROWS,
            ),
            90 if quick else 300,
        ),
        Scenario(
            "d",
            "d",
            f"(d) {joiners} clients joining a room holding the whole trace (b4-update.bin, "
            f"{SEED.stat().st_size if SEED.exists() else 0:,} bytes)",
            "join",
            {
                "wave-size": 5,
                "wave-ms": 200,
                "seed": str(SEED),
                "clients": joiners,
                "text-name": SEED_TEXT_NAME,
                "expect-length": SEED_CHARS,
            },
            (
                ("time-to-synced p50 (ms)", "sync_p50_ms", "{:.1f}"),
                ("time-to-synced p99 (ms)", "sync_p99_ms", "{:.1f}"),
                ("client's own apply p50 (ms, included above)", "client_apply_p50_ms", "{:.1f}"),
                *COMMON_ROWS,
            ),
            60 + joiners / 5 * 1.0 + 60,
        ),
    ]
