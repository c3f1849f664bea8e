"""Cross-instance fan-out: one writer on instance A, half the readers on A and half on B.

    python bench/cluster.py [--readers 500] [--duration-s 20] [--interval-ms 10] [--repeat 3]
                            [--database-url postgresql://postgres@127.0.0.1:5432/test]
                            [--redis-url redis://127.0.0.1:6379/0]

Each repetition runs two cells, interleaved: one coscribe instance (all readers on it), then two
instances over one PostgreSQL schema and one Redis (REDIS_URL; a key prefix per run, deleted
afterwards). Both store every update in PostgreSQL. The servers are pinned to CPU 0 (both
instances share it, as the single one has it alone) and the load generator to CPU 1, as in
bench/run.py. Prints, per cell, fan-out p50/p99, delivered/expected, disconnects, CPU seconds
per instance, updates stored, and the medians with the cluster/single ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import NODE_DIR, ROOT, log
from bench.cell import LOADGEN
from bench.procfs import cpu_seconds
from bench.servers import (
    BENCH_SETTINGS,
    _drop_pg_schema,
    _new_pg_schema,
    _with_search_path,
    ensure_bench_node,
    pin_cpus,
    pinned,
    stop,
)
from tests.cluster.harness import delete_keys
from tests.live_server import COSCRIBE
from tests.processes import answers_health, free_port, wait_ready


def start(env: dict[str, str], workdir: Path, name: str, cpu: int | None) -> tuple[Any, str]:
    port = free_port()
    with (workdir / f"{name}.log").open("wb") as out:
        proc = subprocess.Popen(
            pinned([*COSCRIBE, "serve", "--host", "127.0.0.1", "--port", str(port)], cpu),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_ready(proc, answers_health(f"http://127.0.0.1:{port}"), 30)
    return proc, f"ws://127.0.0.1:{port}/ws/"


def cell(args: argparse.Namespace, instances: int, pins: tuple[int, int] | None) -> dict[str, Any]:
    schema = _new_pg_schema(args.database_url)
    prefix = f"coscribe-bench-{uuid.uuid4().hex[:8]}:"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("COSCRIBE_") and k != "REDIS_URL"
    }
    env.update(
        BENCH_SETTINGS,
        PYTHONPATH=str(ROOT),
        DATABASE_URL=_with_search_path(args.database_url, schema),
    )
    if instances > 1:
        env.update(REDIS_URL=args.redis_url, COSCRIBE_REDIS_PREFIX=prefix)
    procs = []
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="coscribe-bench-cluster-") as tmp:
        workdir = Path(tmp)
        try:
            subprocess.run(
                [*COSCRIBE, "db", "migrate"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                timeout=120,
            )
            servers = [start(env, workdir, f"i{i}", pins and pins[0]) for i in range(instances)]
            procs = [proc for proc, _ in servers]
            command = ["node", str(LOADGEN), "fanout", "--url-prefix", servers[0][1]]
            if instances > 1:
                command += ["--reader-url-prefix", servers[1][1]]
            command += [
                "--readers",
                str(args.readers),
                "--duration-s",
                str(args.duration_s),
                "--interval-ms",
                str(args.interval_ms),
                "--procs",
                "2",
            ]
            gen = subprocess.Popen(
                pinned(command, pins and pins[1]),
                cwd=NODE_DIR,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            cpu_before = [cpu_seconds(p.pid) for p in procs]
            assert gen.stdout is not None
            for line in gen.stdout:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event.get("event") == "phase":
                    cpu_before = [cpu_seconds(p.pid) for p in procs]
                elif event.get("event") == "result":
                    result = {"status": event.get("status"), **(event.get("metrics") or {})}
                    break
            result["cpu_s"] = [
                cpu_seconds(p.pid) - b for p, b in zip(procs, cpu_before, strict=True)
            ]
            stop(gen, 5)
        finally:
            for proc in procs:
                stop(proc)
            if instances > 1:
                delete_keys(args.redis_url, prefix)
            result["stored"] = _stored(args.database_url, schema)
            _drop_pg_schema(args.database_url, schema)
    return result


def _stored(admin_url: str, schema: str) -> int | None:
    import psycopg

    with psycopg.connect(_with_search_path(admin_url, schema)) as conn:
        row = conn.execute("SELECT coalesce(sum(last_seq), 0) FROM notes").fetchone()
        return int(row[0]) if row else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=500)
    parser.add_argument("--duration-s", type=int, default=20)
    parser.add_argument("--interval-ms", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    ensure_bench_node()
    pins = pin_cpus()
    runs: dict[str, list[dict[str, Any]]] = {"single": [], "cluster": []}
    for repeat in range(args.repeat):
        for name, instances in (("single", 1), ("cluster", 2)):
            log(f"== {name} (repetition {repeat + 1}/{args.repeat})")
            started = time.monotonic()
            figures = cell(args, instances, pins)
            runs[name].append(figures)
            log(f"   {json.dumps(_row(figures))} in {time.monotonic() - started:.0f} s")
    print(
        f"\none writer -> {args.readers} readers, an update every {args.interval_ms} ms for "
        f"{args.duration_s} s; cluster: writer and half the readers on A, half on B"
    )
    print("| cell | p50 ms | p99 ms | delivered | disconnects | CPU s per instance | stored |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    medians = {}
    for name, cells in runs.items():
        for figures in cells:
            row = _row(figures)
            print(
                f"| {name} | {row['p50']} | {row['p99']} | {row['delivered']} | "
                f"{row['disconnects']} | {row['cpu']} | {row['stored']} |"
            )
        medians[name] = {
            key: statistics.median(c.get(key) or 0 for c in cells)
            for key in ("latency_p50_ms", "latency_p99_ms")
        }
        medians[name]["cpu"] = statistics.median(sum(c["cpu_s"]) for c in cells)
    s, c = medians["single"], medians["cluster"]
    print(
        f"\nmedians: p99 single {s['latency_p99_ms']:.1f} ms, cluster "
        f"{c['latency_p99_ms']:.1f} ms ({_ratio(c['latency_p99_ms'], s['latency_p99_ms'])}); "
        f"CPU all instances single {s['cpu']:.2f} s, cluster {c['cpu']:.2f} s "
        f"({_ratio(c['cpu'], s['cpu'])})"
    )
    return 0


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def _row(figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "p50": round(figures.get("latency_p50_ms") or 0, 1),
        "p99": round(figures.get("latency_p99_ms") or 0, 1),
        "delivered": f"{(figures.get('delivery_ratio') or 0):.1%}",
        "disconnects": figures.get("disconnects"),
        "cpu": " + ".join(f"{v:.2f}" for v in figures.get("cpu_s", [])),
        "stored": figures.get("stored"),
    }


if __name__ == "__main__":
    sys.exit(main())
