"""Compaction beside live writes: how long it holds the write lock, and what other notes feel.

The automerge-paper trace (tests/fixtures, about 260,000 edits) is stored as one update row per
edit in a note, then that note is compacted the way the server's background job does it, while
a thread appends a small update to one of a few other notes every few milliseconds. Printed per
database:

* compaction: the whole call, and the longest write-lock hold inside it. A hold starts at
  ``BEGIN IMMEDIATE`` (SQLite: the database's one write lock) or at the first statement that
  takes row locks (INSERT, UPDATE, DELETE, SELECT ... FOR UPDATE; PostgreSQL) and ends when
  that transaction's COMMIT or ROLLBACK returns.
* other notes' writes under way while the compaction ran: count, p50, p99 and max latency
  (one transaction each, from asking for it to its commit), and how many failed (SQLite's
  "database is locked" after the busy timeout).

Usage::

    .venv/bin/python bench/compaction.py                       # SQLite and PostgreSQL
    .venv/bin/python bench/compaction.py --drivers sqlite --edits 50000

PostgreSQL runs in a schema of its own at COSCRIBE_TEST_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test), dropped afterwards; an unreachable server is
reported and skipped.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pycrdt
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crdt import document  # noqa: E402
from persistence import migrate  # noqa: E402
from persistence import notes as note_rows  # noqa: E402
from persistence.config import database_config_from_env  # noqa: E402
from persistence.engine import Database  # noqa: E402
from persistence.schema import workspaces  # noqa: E402

try:  # the update log and compaction have modules of their own since the persistence split
    from persistence import compaction as _compaction
    from persistence import update_log as _log
except ImportError:  # pragma: no cover - the layout before it
    _compaction = None
    _log = note_rows

TRACE = ROOT / "tests" / "fixtures" / "editing-traces" / "sequential_traces"
TRACE_FILE = TRACE / "automerge-paper.json.gz"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
STORE_BATCH = 2000  # update rows per transaction while filling the note
OTHER_NOTES = 4


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def trace_updates(limit: int | None) -> tuple[list[bytes], str]:
    """One Yjs update per edit of the trace (ASCII, so byte offsets are character offsets)."""
    with gzip.open(TRACE_FILE, "rt", encoding="utf-8") as f:
        trace = json.load(f)
    doc = pycrdt.Doc(client_id=1)
    text = doc.get("content", type=pycrdt.Text)
    made: list[bytes] = []
    doc.observe(lambda event: made.append(event.update))
    for txn in trace["txns"]:
        for position, deleted, inserted in txn["patches"]:
            if limit is not None and len(made) >= limit:
                return made, str(text)
            with doc.transaction():
                if deleted:
                    del text[position : position + deleted]
                if inserted:
                    text.insert(position, inserted)
    return made, str(text)


def small_updates(count: int, client_id: int) -> list[bytes]:
    doc = pycrdt.Doc(client_id=client_id)
    text = doc.get("content", type=pycrdt.Text)
    made: list[bytes] = []
    doc.observe(lambda event: made.append(event.update))
    for _ in range(count):
        text += "x"
    return made


@contextmanager
def database(driver: str, pg_url: str) -> Iterator[Database]:
    if driver == "sqlite":
        with tempfile.TemporaryDirectory(prefix="coscribe-bench-") as folder:
            db = Database(
                database_config_from_env({"COSCRIBE_SQLITE_PATH": f"{folder}/bench.sqlite"})
            )
            try:
                yield db
            finally:
                db.close()
        return
    schema = f"coscribe_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in pg_url else "?"
    url = f"{pg_url}{separator}options=-csearch_path%3D{schema}"
    db = Database(database_config_from_env({"DATABASE_URL": url}))
    try:
        yield db
    finally:
        db.close()
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class LockClock:
    """Write-lock holds of the transactions one thread runs, from the engine's own events."""

    LOCKING = ("BEGIN IMMEDIATE", "INSERT", "UPDATE", "DELETE")

    def __init__(self, db: Database) -> None:
        self.thread: int | None = None
        self.holds: list[float] = []
        self.spans: list[tuple[float, float]] = []  # (start, end) of each hold
        self._start: float | None = None
        engine = db.engine
        sa.event.listen(engine, "before_cursor_execute", self._statement)
        dialect = engine.dialect
        for name in ("do_commit", "do_rollback"):
            setattr(dialect, name, self._ending(getattr(dialect, name)))

    def _mine(self) -> bool:
        return threading.get_ident() == self.thread

    def _statement(self, conn, cursor, statement: str, *args: Any) -> None:
        if not self._mine() or self._start is not None:
            return
        head = statement.lstrip().upper()
        if head.startswith(self.LOCKING) or " FOR UPDATE" in head or " FOR NO KEY UPDATE" in head:
            self._start = time.perf_counter()

    def _ending(self, original: Callable[[Any], None]) -> Callable[[Any], None]:
        def end(dbapi_connection: Any) -> None:
            try:
                original(dbapi_connection)
            finally:
                if self._mine() and self._start is not None:
                    self.holds.append(time.perf_counter() - self._start)
                    self.spans.append((self._start, time.perf_counter()))
                    self._start = None

        return end


def fill(db: Database, big: list[bytes], others: list[str]) -> str:
    now = datetime.now(UTC)
    with db.begin() as conn:
        conn.execute(
            sa.insert(workspaces).values(
                id="ws", slug="ws", name="ws", settings={}, created_at=now, updated_at=now
            )
        )
        note_rows.create_note(conn, workspace_id="ws", note_id="paper")
        for note_id in others:
            note_rows.create_note(conn, workspace_id="ws", note_id=note_id)
    for start in range(0, len(big), STORE_BATCH):
        with db.begin() as conn:
            _log.append_updates(conn, "paper", big[start : start + STORE_BATCH])
    return "paper"


def compact(db: Database, note_id: str) -> Any:
    if _compaction is not None:
        return _compaction.compact_note(db, note_id)
    with db.begin() as conn:  # what server/jobs.py did before the split
        return _log.compact_note(conn, note_id)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(
    driver: str, big: list[bytes], body: str, interval_ms: float, pg_url: str, verbose: bool
) -> dict:
    others = [f"other{i}" for i in range(OTHER_NOTES)]
    with database(driver, pg_url) as db:
        migrate.upgrade(db)
        started = time.perf_counter()
        fill(db, big, others)
        say(f"{driver}: stored {len(big)} update rows in {time.perf_counter() - started:.1f}s")
        small = {note_id: small_updates(20_000, 100 + i) for i, note_id in enumerate(others)}
        clock = LockClock(db)
        stop = threading.Event()
        samples: list[tuple[float, float, bool]] = []  # (started, seconds, ok)
        appended = dict.fromkeys(others, 0)

        def writer() -> None:
            turn = 0
            while not stop.is_set():
                note_id = others[turn % len(others)]
                turn += 1
                begun = time.perf_counter()
                ok = True
                try:
                    with db.begin() as conn:
                        _log.append_updates(conn, note_id, [small[note_id][appended[note_id]]])
                    appended[note_id] += 1
                except sa.exc.OperationalError:
                    ok = False
                samples.append((begun, time.perf_counter() - begun, ok))
                stop.wait(interval_ms / 1000)

        thread = threading.Thread(target=writer, name="other-notes")
        thread.start()
        stop.wait(0.5)  # the writer's steady state first
        clock.thread = threading.get_ident()
        began = time.perf_counter()
        result = compact(db, "paper")
        ended = time.perf_counter()
        clock.thread = None
        stop.wait(0.5)
        stop.set()
        thread.join()

        # What is stored is what was typed: the big note and every other note's appends.
        with db.read() as conn:
            doc = _log.load_doc(conn, "paper")
            assert str(doc.get("content", type=pycrdt.Text)) == body, "the paper lost edits"
            for note_id in others:
                expected = "x" * appended[note_id]
                got = document.body_text(_log.load_doc(conn, note_id))
                assert got == expected, f"{note_id} lost edits"
        # Every write that was under way at some point while the compaction ran.
        during = [s for s in samples if s[0] <= ended and s[0] + s[1] >= began]
        if verbose:
            for start, seconds, _ in sorted(during, key=lambda s: -s[1])[:5]:
                say(f"  slow write at +{start - began:.2f}s took {1000 * seconds:.0f} ms")
            for start, end in sorted(clock.spans, key=lambda s: s[0] - s[1])[:5]:
                say(f"  hold at +{start - began:.2f}s for {1000 * (end - start):.0f} ms")
        latencies = [seconds for _, seconds, _ in during]
        return {
            "driver": driver,
            "edits": len(big),
            "merged": result.merged,
            "compaction_s": ended - began,
            "longest_hold_s": max(clock.holds, default=0.0),
            "holds": len(clock.holds),
            "writes": len(during),
            "failed": sum(not ok for _, _, ok in during),
            "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
            "p99_ms": 1000 * percentile(latencies, 0.99) if latencies else 0.0,
            "max_ms": 1000 * max(latencies, default=0.0),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drivers", default="sqlite,postgres")
    parser.add_argument("--edits", type=int, default=None, help="first N edits (default: all)")
    parser.add_argument("--interval-ms", type=float, default=5.0, help="between other writes")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--verbose", action="store_true", help="the slowest writes and holds")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    big, body = trace_updates(args.edits)
    say(f"{len(big)} updates from the trace in {time.perf_counter() - started:.1f}s")
    rows = []
    for driver in args.drivers.split(","):
        if driver == "postgres":
            try:
                psycopg.connect(args.postgres_url, connect_timeout=3).close()
            except psycopg.OperationalError as exc:
                say(f"postgres skipped: {str(exc).strip().splitlines()[0]}")
                continue
        rows.append(run(driver, big, body, args.interval_ms, args.postgres_url, args.verbose))
    layout = "split" if _compaction is not None else "single transaction"
    print(f"compaction of automerge-paper ({len(big)} update rows), compaction: {layout}")
    print(
        "| database | compaction s | longest write-lock hold s | write transactions | "
        f"other writes (every {args.interval_ms:g} ms) | p50 ms | p99 ms | max ms | failed |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['driver']} | {r['compaction_s']:.2f} | {r['longest_hold_s']:.3f} | "
            f"{r['holds']} | {r['writes']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['max_ms']:.1f} | {r['failed']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
