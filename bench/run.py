"""Compare coscribe with pycrdt-websocket and the reference @y/websocket-server under load.

    .venv/bin/python bench/run.py [--quick] [--servers coscribe,pycrdt,reference]
                                  [--scenarios a,b,c,d] [--procs 2] [--no-write]

For every scenario and every server: start the server on a free 127.0.0.1 port (fresh, so
figures are per scenario), drive it with the Node load generator (bench/node/loadgen.mjs),
read the server's CPU time (/proc/PID/stat utime+stime of it and its children) and peak RSS
(VmHWM), stop it. A server that fails or hangs a scenario gets "failed"/"timeout" in its cells;
the run goes on. Prints the table and writes bench/results/<date>-<sha>.md and latest.md.

Scenarios (see bench/README.md):
  a  one room, 1 writer + 100 readers, then + 500 readers: an update every 10 ms
  b  200 rooms x 4 clients, every client writes every 500 ms
  c  the automerge-paper editing trace replayed through the server (100 edits per update)
  d  100 clients joining a room that holds the whole trace (b4-update.bin)

Setup is automatic: `npm ci` in bench/node and tests/node, and a separate virtualenv
bench/.venv-peers with pycrdt-websocket (kept out of the project's dependencies).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script (bench/run.py): make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import RESULTS, ROOT, log
from bench.cell import Cell, combine, run_cell
from bench.report import git_sha, loadavg, render_report
from bench.scenarios import SEED, TRACE, scenarios
from bench.servers import SERVERS, ensure_bench_node, ensure_peers_venv, ensure_reference_node


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark coscribe against pycrdt-websocket and @y/websocket-server.",
        epilog="Example: .venv/bin/python bench/run.py --quick --servers coscribe,reference",
    )
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated subset of {','.join(SERVERS)}",
    )
    parser.add_argument("--scenarios", default="a,b,c,d", help="comma-separated subset of a,b,c,d")
    parser.add_argument(
        "--procs", type=int, default=2, help="load generator worker processes (default 2)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every cell N times (servers interleaved) and report medians (default 1)",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the table, write no results file"
    )
    args = parser.parse_args(argv)
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = [s for s in args.server_list if s not in SERVERS]
    if bad:
        parser.error(f"unknown server(s) {', '.join(bad)}; choose from {', '.join(SERVERS)}")
    bad = [s for s in args.scenario_list if s not in ("a", "b", "c", "d")]
    if bad:
        parser.error(f"unknown scenario(s) {', '.join(bad)}; choose from a,b,c,d")
    return args


def setup(servers: list[str]) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("bench: node and npm are needed for the load generator")
    for path in (TRACE, SEED):
        if not path.exists():
            raise SystemExit(f"bench: missing data file {path}")
    ensure_bench_node()
    steps: dict[str, Callable[[], None]] = {
        "pycrdt": ensure_peers_venv,
        "reference": ensure_reference_node,
    }
    for name in servers:
        if name in steps:
            steps[name]()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup(args.server_list)
    chosen = [s for s in scenarios(args.quick) if s.group in args.scenario_list]
    meta = {
        "date": datetime.date.today().isoformat(),
        "sha": git_sha(),
        "command": "bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "load_before": loadavg(),
    }
    began = time.monotonic()
    runs: dict[tuple[str, str], list[Cell]] = {}
    for scenario in chosen:
        log(f"== {scenario.title}")
        for repeat in range(args.repeat):
            for server in args.server_list:
                log(f"  {server} (run {repeat + 1}/{args.repeat}) ...")
                cell = run_cell(scenario, server, args.procs)
                runs.setdefault((scenario.key, server), []).append(cell)
                shown = {k: v for k, v in cell.metrics.items() if not isinstance(v, list)}
                log(f"  {server}: {cell.status} in {cell.wall_s:.1f} s {json.dumps(shown)}")
                time.sleep(1)  # let sockets and the CPU settle between servers
    results = {key: combine(cells) for key, cells in runs.items()}
    elapsed = time.monotonic() - began
    meta["elapsed"] = f"{elapsed / 60:.1f} min" if elapsed >= 120 else f"{elapsed:.0f} s"
    meta["load_after"] = loadavg()
    report = render_report(args, chosen, args.server_list, results, meta)
    print(report)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        name = RESULTS / f"{meta['date']}-{meta['sha']}{'-quick' if args.quick else ''}.md"
        name.write_text(report)
        (RESULTS / ("latest-quick.md" if args.quick else "latest.md")).write_text(report)
        log(f"wrote {name.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
