"""What the indexer pays per note: the search index write and the "changed" event of notes
being typed into, as bench scenario (b) makes it index them, on SQLite and on PostgreSQL.

    .venv/bin/python bench/indexing.py                     # both databases
    .venv/bin/python bench/indexing.py --databases sqlite --rounds 5

For each database (a temp SQLite file, or a schema of its own in the PostgreSQL at
--database-url, dropped afterwards): --notes notes are created, then every round appends 16
edits' worth of text to every note (ASCII markers like scenario (b)'s, or words of several
languages with --mixed) and writes them the way server/indexer.py does: batches of 25 notes,
each batch one transaction with persistence.search.index_notes and the notes' "changed"
events (the patch diffed against the body indexed before). The first --warmup rounds are not
measured. Prints, per note: this process's CPU time (Python, and SQLite's engine, which runs
in-process; PostgreSQL's own CPU is not in it), the wall time, and the words-only part
(persistence.search.terms over the body).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from persistence import events, migrate, notes, search  # noqa: E402
from persistence.config import database_config_from_env  # noqa: E402
from persistence.engine import Database  # noqa: E402
from persistence.stores import workspaces  # noqa: E402
from server.indexer import BATCH, _changed  # noqa: E402

EXTRA_WORDS = ["café", "naïve", "Zürich", "Москва", "встреча", "東京", "会議", "résumé", "Straße"]


def grow(rng: random.Random, mixed: bool) -> str:
    """16 edits of text, as 4 writers x 4 markers (scenario b) or as words."""
    if mixed:
        return " " + " ".join(rng.choice([*EXTRA_WORDS, "budget", "review"]) for _ in range(48))
    return "".join(
        f"#@{rng.randint(1, 4)}.{rng.randint(1, 99)}.{rng.randint(10**12, 10**13)}@#"
        for _ in range(16)
    )


def run_one(db: Database, args: argparse.Namespace) -> dict[str, float]:
    rng = random.Random(args.seed)
    with db.begin() as conn:
        workspaces.ensure_default(conn)
        ids = [
            notes.create_note(conn, workspace_id="default", note_id=f"n{i:05d}")["id"]
            for i in range(args.notes)
        ]
    bodies = dict.fromkeys(ids, "")
    cpu = wall = words_s = 0.0
    measured = 0
    for round_ in range(args.warmup + args.rounds):
        for note_id in ids:
            bodies[note_id] += grow(rng, args.mixed)
        for at in range(0, len(ids), BATCH):
            batch = ids[at : at + BATCH]
            started_cpu, started = time.process_time(), time.perf_counter()
            with db.begin() as conn:
                written = [(n, bodies[n], None) for n in batch]
                results = search.index_notes(conn, written)
                changes = [
                    (r.workspace_id, n, "changed", _changed(r, bodies[n], None))
                    for n, r in zip(batch, results, strict=True)
                    if r is not None
                ]
                events.append_many(conn, changes)
            if round_ >= args.warmup:
                cpu += time.process_time() - started_cpu
                wall += time.perf_counter() - started
                measured += len(batch)
                started = time.perf_counter()
                for note_id in batch:
                    search.terms(bodies[note_id])
                words_s += time.perf_counter() - started
    length = sum(map(len, bodies.values())) / len(bodies)
    return {
        "cpu_ms": 1000 * cpu / measured,
        "wall_ms": 1000 * wall / measured,
        "words_ms": 1000 * words_s / measured,
        "chars": length,
    }


def database(kind: str, tmp: str, args: argparse.Namespace) -> tuple[Database, str | None]:
    if kind == "sqlite":
        env = {"COSCRIBE_SQLITE_PATH": str(Path(tmp) / "bench.sqlite")}
        return Database(database_config_from_env(env)), None
    import psycopg

    schema = f"coscribe_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in args.database_url else "?"
    url = f"{args.database_url}{sep}options=-csearch_path%3D{schema}"
    return Database(database_config_from_env({"DATABASE_URL": url})), schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--notes", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--mixed", action="store_true", help="words of several languages")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "COSCRIBE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    rows = []
    for kind in args.databases.split(","):
        print(f"{kind}: ...", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="coscribe-bench-indexing-") as tmp:
            db, schema = database(kind, tmp, args)
            try:
                migrate.upgrade(db)
                rows.append((kind, run_one(db, args)))
            finally:
                db.close()
                if schema is not None:
                    import psycopg

                    with psycopg.connect(args.database_url, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    text = "words of several languages" if args.mixed else "ASCII markers"
    print(
        f"\n{args.notes} notes, batches of {BATCH}, {args.rounds} measured rounds of 16 edits "
        f"({text}); per note indexed, in ms\n"
    )
    print("| database | body chars (mean) | CPU (this process) | wall | of which words |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind, r in rows:
        print(
            f"| {kind} | {r['chars']:,.0f} | {r['cpu_ms']:.3f} | {r['wall_ms']:.3f} "
            f"| {r['words_ms']:.3f} |"
        )


if __name__ == "__main__":
    main()
