"""What storing costs: CPU and wall time per group-commit batch, through the persister.

Rooms publish what their documents changed to the persister (server/persister.py), which
stores each window's updates of every note in one transaction. This program drives that path
directly, without sockets: each batch publishes ``--updates`` realistic updates (one typed
character each, about 30 bytes, as a pycrdt editor makes them) spread over ``--notes`` notes,
then waits for the persister to store them (``flush``, which skips the batching window), so
every batch is one transaction. Printed per database:

* CPU per batch: the process's CPU time (every thread: the event loop, the writer, the
  driver) over the batches stored;
* wall per batch: elapsed time over the batches stored (publish to commit, one at a time);
* the same per stored update.

Usage::

    .venv/bin/python bench/storage.py                          # SQLite, then PostgreSQL
    .venv/bin/python bench/storage.py --drivers sqlite --batches 5000
    .venv/bin/python bench/storage.py --database-url postgresql://postgres@127.0.0.1/test

PostgreSQL runs in a schema of its own at ``--database-url`` (default COSCRIBE_TEST_DATABASE_URL
or postgresql://postgres@127.0.0.1:5432/test), dropped afterwards; an unreachable server is
reported and skipped. SQLite runs in a temporary file.

``--code DIR`` imports coscribe from another checkout (for a before/after comparison of the
same program), e.g. ``cd ../main && .venv/bin/python ../wt/bench/storage.py --code .``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pycrdt
import sqlalchemy as sa

DEFAULT_PG_URL = os.environ.get(
    "COSCRIBE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def typed_updates(count: int, client_id: int) -> list[bytes]:
    """What an editor makes while typing: one update per character, typed here and there in
    the text (an insert between two characters names both neighbours: about 30 bytes with
    a browser's 32-bit client id)."""
    doc = pycrdt.Doc(client_id=client_id)
    text = doc.get("content", type=pycrdt.Text)
    made: list[bytes] = []
    doc.observe(lambda event: made.append(event.update))
    words = "the quick brown fox jumps over the lazy dog "
    where = random.Random(client_id)
    for index in range(count):
        text.insert(where.randint(0, len(text)), words[index % len(words)])
    return made


class FakeRoom:
    """All the persister reads of a room is its note id."""

    def __init__(self, note_id: str) -> None:
        self.note_id = note_id


@contextmanager
def database(driver: str, pg_url: str) -> Iterator[Any]:
    from persistence.config import database_config_from_env
    from persistence.engine import Database

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


def prepare(db: Any, note_ids: list[str]) -> None:
    from persistence import migrate
    from persistence import notes as note_rows
    from persistence.schema import workspaces

    migrate.upgrade(db)
    now = datetime.now(UTC)
    with db.begin() as conn:
        conn.execute(
            sa.insert(workspaces).values(
                id="ws", slug="ws", name="ws", settings={}, created_at=now, updated_at=now
            )
        )
        for note_id in note_ids:
            note_rows.create_note(conn, workspace_id="ws", note_id=note_id)


async def store(db: Any, args: argparse.Namespace) -> dict[str, float]:
    from server.persister import Persister

    note_ids = [f"bench-note-{index}" for index in range(args.notes)]
    prepare(db, note_ids)
    rooms = [FakeRoom(note_id) for note_id in note_ids]
    per_note = -(-args.updates // args.notes) * (args.batches + args.warmup)
    streams = [iter(typed_updates(per_note, 3_000_000_000 + index)) for index in range(args.notes)]
    sizes: list[int] = []
    persister = Persister(db, window_s=0.02, retry_max_s=1.0)
    flusher = asyncio.create_task(persister.run())

    async def batch() -> None:
        for index in range(args.updates):
            which = index % args.notes
            update = next(streams[which])
            sizes.append(len(update))
            persister.publish(rooms[which], update)  # type: ignore[arg-type]
        if not await persister.flush(timeout=30):
            raise RuntimeError("the persister did not store a batch within 30 s")

    try:
        for _ in range(args.warmup):
            await batch()
        flushes = persister.stats.flushes
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(args.batches):
            await batch()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        batches = persister.stats.flushes - flushes
    finally:
        flusher.cancel()
        with suppress(asyncio.CancelledError):
            await flusher
    if persister.stats.failures:
        raise RuntimeError(f"{persister.stats.failures} failed writes")
    if batches != args.batches:
        say(f"note: {args.batches} batches published, {batches} transactions")
    return {
        "cpu_ms": cpu * 1000 / batches,
        "wall_ms": wall * 1000 / batches,
        "update_bytes": statistics.mean(sizes),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drivers", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--database-url", default=DEFAULT_PG_URL, help="PostgreSQL to use")
    parser.add_argument("--batches", type=int, default=2000, help="batches measured")
    parser.add_argument("--warmup", type=int, default=100, help="batches before measuring")
    parser.add_argument("--updates", type=int, default=10, help="updates per batch")
    parser.add_argument("--notes", type=int, default=4, help="notes the updates spread over")
    parser.add_argument("--repeat", type=int, default=3, help="runs per driver (median)")
    parser.add_argument("--code", type=Path, default=None, help="coscribe checkout to import")
    args = parser.parse_args(argv)
    root = (args.code or Path(__file__).resolve().parent.parent).resolve()
    sys.path.insert(0, str(root))
    say(f"coscribe from {root}")
    print(
        f"{args.batches} batches of {args.updates} updates over {args.notes} notes, "
        f"median of {args.repeat} runs"
    )
    print(f"{'driver':<10} {'cpu/batch':>10} {'wall/batch':>11} {'cpu/update':>11} {'bytes':>6}")
    for driver in [d.strip() for d in args.drivers.split(",") if d.strip()]:
        runs = []
        try:
            for _ in range(args.repeat):
                with database(driver, args.database_url) as db:
                    runs.append(asyncio.run(store(db, args)))
        except psycopg.OperationalError as exc:
            print(f"{driver:<10} skipped: {str(exc).strip().splitlines()[0]}")
            continue
        cpu = statistics.median(r["cpu_ms"] for r in runs)
        wall = statistics.median(r["wall_ms"] for r in runs)
        size = runs[0]["update_bytes"]
        print(
            f"{driver:<10} {cpu:>8.3f}ms {wall:>9.3f}ms {cpu * 1000 / args.updates:>9.1f}us "
            f"{size:>6.1f}"
        )
        say(f"{driver}: runs cpu/batch " + ", ".join(f"{r['cpu_ms']:.3f}ms" for r in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
