"""Search and change-feed figures on a real server: how long an edit takes to be found, and
how long a query over 10,000 notes takes, on SQLite and on PostgreSQL.

    .venv/bin/python bench/search.py                       # both databases, 10,000 notes
    .venv/bin/python bench/search.py --databases sqlite --notes 2000 --queries 200

For each database: a fresh database (a temp SQLite file, or a schema of its own in the
PostgreSQL at --database-url, dropped afterwards) is migrated and filled with --notes notes of
~200 words each (a Zipf-distributed vocabulary with accented, Cyrillic and CJK words), written
and indexed directly through the persistence layer (that is set-up, not measured); then a real
`coscribe serve` is started on it and measured over HTTP:

* index lag: a REST text edit adds a word found nowhere else, then GET /api/search is polled
  every 5 ms until the note is found; the time from the edit's 200 to the first hit. The same
  edit's "changed" event on GET /api/events is timed too (from the 200 to the event's arrival).
  The server runs with its default COSCRIBE_SEARCH_INDEX_DELAY_MS (500), which dominates.
* query latency: --queries GETs of /api/search (limit 20) cycling through common words, rare
  words, two-word queries and phrases; p50, p99 and max of the whole request, and hits.

Prints a markdown table. The machine is shared with whatever else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pycrdt  # noqa: E402

from crdt import document  # noqa: E402
from persistence import migrate, notes, search, update_log  # noqa: E402
from persistence.config import database_config_from_env  # noqa: E402
from persistence.engine import Database  # noqa: E402
from persistence.stores import workspaces  # noqa: E402
from tests.live_server import COSCRIBE, clean_env  # noqa: E402
from tests.processes import answers_health, free_port, stop_process, wait_ready  # noqa: E402

EXTRA_WORDS = ["café", "naïve", "Zürich", "Москва", "встреча", "東京", "会議", "résumé", "Straße"]


def vocabulary(rng: random.Random, size: int = 5000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = {"".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(size)}
    return sorted(words) + EXTRA_WORDS


def body(rng: random.Random, words: list[str], weights: list[float], count: int = 200) -> str:
    return " ".join(rng.choices(words, weights, k=count))


def fill(db: Database, count: int, rng: random.Random) -> list[str]:
    words = vocabulary(rng)
    weights = [1 / (rank + 1) for rank in range(len(words))]  # Zipf: a few common words
    with db.begin() as conn:
        workspaces.ensure_default(conn)
    started = time.monotonic()
    for start in range(0, count, 500):
        with db.begin() as conn:
            for i in range(start, min(count, start + 500)):
                note_id = f"n{i:05d}"
                text = body(rng, words, weights)
                notes.create_note(conn, workspace_id="default", note_id=note_id, title=f"Note {i}")
                doc = document.new_doc()
                doc.get(document.BODY, type=pycrdt.Text).insert(0, text)
                update_log.append_update(conn, note_id, doc.get_update())
                search.index_note(conn, note_id, text)
    print(f"  filled {count} notes in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return words


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


def put_text(base: str, note_id: str, text: str) -> None:
    request = urllib.request.Request(
        f"{base}/api/notes/{note_id}/text",
        data=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class FeedWatcher:
    """Reads GET /api/events in a thread and notes when each changed event arrives."""

    def __init__(self, base: str) -> None:
        self.arrived: dict[str, float] = {}
        self.response = urllib.request.urlopen(f"{base}/api/events", timeout=60)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                    if data["type"] == "changed":
                        self.arrived[f"{data['note_id']}:{data['length']}"] = time.monotonic()
        except (OSError, ValueError, AttributeError):  # closed under the reader: the end
            return

    def close(self) -> None:
        self.response.close()


def measure(base: str, words: list[str], rng: random.Random, args) -> dict[str, float]:
    # Index lag, one note at a time.
    lags, feed_lags = [], []
    watcher = FeedWatcher(base)
    for i in range(args.edits):
        note_id = f"n{rng.randrange(args.notes):05d}"
        marker = f"zq{uuid.uuid4().hex[:10]}"
        text = f"{marker} edited {i}"
        put_text(base, note_id, text)
        stored = time.monotonic()
        query = urllib.parse.urlencode({"q": marker})
        while True:
            _, raw = get(f"{base}/api/search?{query}")
            if json.loads(raw)["items"]:
                lags.append(time.monotonic() - stored)
                break
            if time.monotonic() - stored > 30:
                raise RuntimeError("the edit was not found within 30 s")
            time.sleep(0.005)
        key = f"{note_id}:{len(text)}"
        deadline = time.monotonic() + 10
        while key not in watcher.arrived and time.monotonic() < deadline:
            time.sleep(0.005)
        if key in watcher.arrived:
            feed_lags.append(watcher.arrived[key] - stored)
    watcher.close()
    # Query latency.
    common = words[:20]
    rare = words[2000:2100]
    queries = []
    for i in range(args.queries):
        kind = i % 4
        if kind == 0:
            queries.append(rng.choice(common))
        elif kind == 1:
            queries.append(rng.choice(rare))
        elif kind == 2:
            queries.append(f"{rng.choice(common)} {rng.choice(rare)}")
        else:
            queries.append(f'"{rng.choice(common)} {rng.choice(common)}"')
    times, hits = [], []
    for q in queries:
        url = f"{base}/api/search?{urllib.parse.urlencode({'q': q, 'limit': 20})}"
        started = time.monotonic()
        status, raw = get(url)
        times.append(time.monotonic() - started)
        assert status == 200
        hits.append(len(json.loads(raw)["items"]))
    return {
        "lag_p50": statistics.median(lags),
        "lag_p99": percentile(lags, 0.99),
        "lag_max": max(lags),
        "feed_p50": statistics.median(feed_lags) if feed_lags else float("nan"),
        "feed_p99": percentile(feed_lags, 0.99) if feed_lags else float("nan"),
        "q_p50": statistics.median(times),
        "q_p99": percentile(times, 0.99),
        "q_max": max(times),
        "hits": statistics.mean(hits),
    }


def run_one(kind: str, args) -> dict[str, float]:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="coscribe-bench-search-") as tmp:
        schema = None
        if kind == "sqlite":
            env = {"COSCRIBE_SQLITE_PATH": str(Path(tmp) / "bench.sqlite")}
        else:
            import psycopg

            schema = f"coscribe_bench_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            sep = "&" if "?" in args.database_url else "?"
            env = {"DATABASE_URL": f"{args.database_url}{sep}options=-csearch_path%3D{schema}"}
        try:
            db = Database(database_config_from_env(env))
            migrate.upgrade(db)
            words = fill(db, args.notes, rng)
            db.close()
            port = free_port()
            log = open(Path(tmp) / "server.log", "w")  # noqa: SIM115 - closed below
            process = subprocess.Popen(
                [*COSCRIBE, "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=clean_env({**env, "COSCRIBE_LOG_LEVEL": "warning"}, Path(tmp)),
                cwd=tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            base = f"http://127.0.0.1:{port}"
            try:
                wait_ready(process, answers_health(base), 60)
                return measure(base, words, rng, args)
            finally:
                stop_process(process)
                log.close()
        finally:
            if schema is not None:
                import psycopg

                with psycopg.connect(args.database_url, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--edits", type=int, default=40)
    parser.add_argument("--queries", type=int, default=400)
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
        rows.append((kind, run_one(kind, args)))
    ms = 1000
    print(
        f"\n{args.notes} notes, {args.edits} edits, {args.queries} queries "
        "(times in ms; lag = from the edit's 200 to the first search hit / 'changed' event)\n"
    )
    print(
        "| database | index lag p50 | p99 | max | feed lag p50 | p99 "
        "| query p50 | p99 | max | hits/query |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind, r in rows:
        print(
            f"| {kind} | {r['lag_p50'] * ms:.0f} | {r['lag_p99'] * ms:.0f} | "
            f"{r['lag_max'] * ms:.0f} | {r['feed_p50'] * ms:.0f} | {r['feed_p99'] * ms:.0f} | "
            f"{r['q_p50'] * ms:.1f} | {r['q_p99'] * ms:.1f} | {r['q_max'] * ms:.1f} | "
            f"{r['hits']:.1f} |"
        )


if __name__ == "__main__":
    main()
