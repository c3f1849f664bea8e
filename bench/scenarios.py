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
    key: str  # a, b, c, d, e, f
    group: str  # what --scenarios selects (the same letter)
    title: str
    loadgen: str  # loadgen scenario name
    args: dict[str, Any]
    # (label, metric key, format) rows for the table
    rows: tuple[tuple[str, str, str], ...]
    timeout_s: float


GROUPS = ("a", "b", "c", "d", "e", "f")
DEFAULT_GROUPS = ("a", "b", "d", "e", "f")

# Rows whose coscribe/other ratio the table shows (lower is better for all of them).
RATIO_KEYS = frozenset(
    {
        "server_cpu_s",
        "latency_p99_ms",
        "sync_p99_ms",
        "burst_s",
        "idle_rss_mb",
        "kb_per_socket",
        "kb_per_room",
    }
)

WRITE_ROWS = (
    ("delivered updates/s", "delivered_per_s", "{:,.0f}"),
    ("fan-out latency p50 (ms)", "latency_p50_ms", "{:.1f}"),
    ("fan-out latency p99 (ms)", "latency_p99_ms", "{:.1f}"),
    ("delivered / expected", "delivery_ratio", "{:.1%}"),
    ("disconnected clients", "disconnects", "{:d}"),
    ("updates appended to coscribe's log", "stored_updates", "{:,d}"),
)
COMMON_ROWS = (
    ("server CPU s", "server_cpu_s", "{:.2f}"),
    ("server cores busy (CPU s / phase s)", "server_cores", "{:.2f}"),
    ("server peak RSS (MB)", "server_rss_mb", "{:.0f}"),
    ("load generator CPU s", "loadgen_cpu_s", "{:.1f}"),
    ("server waited for a CPU (run queue), s", "server_runqueue_wait_s", "{:.2f}"),
    ("other processes' CPU meanwhile (cores)", "others_cores", "{:.2f}"),
)


def scenarios(quick: bool) -> list[Scenario]:
    waves = {"wave-size": 10, "wave-ms": 100}
    duration = 3 if quick else 20
    readers = 50 if quick else 500
    rooms = 20 if quick else 250
    joiners = 20 if quick else 100
    writers, burst_updates, burst_readers = (4, 1_000, 10) if quick else (4, 5_000, 20)
    notes = 100 if quick else 500
    fanout_timeout = 60 + duration + 30
    return [
        Scenario(
            "a",
            "a",
            f"(a) one room, 1 writer + {readers} readers, update every 10 ms for {duration} s",
            "fanout",
            {**waves, "readers": readers, "interval-ms": 10, "duration-s": duration},
            WRITE_ROWS + COMMON_ROWS,
            fanout_timeout + readers / 10 * 1.0,
        ),
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
                ("sync step 2 per joiner (bytes)", "step2_bytes", "{:,.0f}"),
                *COMMON_ROWS,
            ),
            60 + joiners / 5 * 1.0 + 60,
        ),
        Scenario(
            "e",
            "e",
            f"(e) burst: {writers} writers x {burst_updates:,} updates as fast as they can, "
            f"one room with {burst_readers} readers",
            "burst",
            {
                **waves,
                "writers": writers,
                "updates": burst_updates,
                "readers": burst_readers,
                "chunk": 20,
                "timeout-s": 120,
                "drain-timeout-s": 60,
            },
            (
                ("time until every reader has every update (s)", "burst_s", "{:.2f}"),
                ("writers' send time (s)", "send_s", "{:.2f}"),
                ("delivered / expected", "delivery_ratio", "{:.1%}"),
                ("delivered updates/s", "delivered_per_s", "{:,.0f}"),
                ("fan-out latency p50 (ms)", "latency_p50_ms", "{:.1f}"),
                ("fan-out latency p99 (ms)", "latency_p99_ms", "{:.1f}"),
                ("disconnected clients", "disconnects", "{:d}"),
                ("updates appended to coscribe's log", "stored_updates", "{:,d}"),
                *COMMON_ROWS,
            ),
            240,
        ),
        Scenario(
            "f",
            "f",
            f"(f) idle memory: {notes * 4:,} idle sockets over {notes} notes (4 per note)",
            "idle",
            {"wave-size": 25, "wave-ms": 100, "rooms": notes, "per-room": 4},
            (
                ("RSS idle, no socket (MB)", "idle_rss_mb", "{:.1f}"),
                (f"RSS with {notes} sockets, one per note (MB)", "rss_first_mb", "{:.1f}"),
                (f"RSS with {notes * 4:,} sockets (MB)", "rss_all_mb", "{:.1f}"),
                ("kB per socket", "kb_per_socket", "{:.1f}"),
                ("kB per open room (beyond its socket)", "kb_per_room", "{:.1f}"),
                ("disconnected clients", "disconnects", "{:d}"),
                *COMMON_ROWS,
            ),
            240,
        ),
    ]
