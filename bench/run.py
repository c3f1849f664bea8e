"""Fan-out at the floor: coscribe side by side with @y/websocket-server and a plain relay.

    .venv/bin/python bench/run.py [--quick] [--servers coscribe,reference,relay]
                                  [--scenarios a,b,d,e,f] [--repeat 3] [--procs 2]
                                  [--no-pin] [--profile] [--coscribe-database-url URL]
                                  [--no-write]

For every repetition, every scenario and every server (interleaved: repetition 1 runs every
scenario on every server in turn, then repetition 2, ...): start the server on a free
127.0.0.1 port (fresh, so figures are per scenario), pinned to one CPU with the load generator
(bench/node/loadgen.mjs) on another, read the server's CPU time (/proc/PID/stat utime+stime
of it and its children) and memory, stop it. The table shows the median of the repetitions
with their spread, and coscribe's ratio to each other server. A server that fails or hangs a
scenario gets "failed"/"timeout" in its cells; the run goes on. Prints the report and writes
bench/results/<date>-<sha>.md and latest.md.

Servers: coscribe (this checkout, SQLite; or PostgreSQL with --coscribe-database-url),
reference (@y/websocket-server, Node), relay (bench/peers/relay.py: plain websockets, no
CRDT: the floor), pycrdt (pycrdt-websocket; not in the default list).

Scenarios (see bench/README.md; default a,b,d,e,f):
  a  one room, 1 writer + 500 readers: an update every 10 ms for 20 s
  b  250 rooms x 4 clients, every client writes every 500 ms for 20 s
  c  the automerge-paper editing trace replayed through the server (100 edits per update)
  d  100 clients joining a room that holds the whole trace (b4-update.bin)
  e  burst: 4 writers x 5,000 updates as fast as they can, one room with 20 readers
  f  idle memory: 2,000 idle sockets over 500 notes (RSS idle, kB per socket, kB per room)

Setup is automatic: `npm ci` in bench/node and tests/node, bench/.venv-peers with
pycrdt-websocket when it runs, bench/.venv-tools with py-spy for --profile.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import resource
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script (bench/run.py): make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import RESULTS, ROOT, log
from bench import profile as pyspy
from bench.cell import Cell, Options, combine, run_cell
from bench.report import git_sha, loadavg, render_report
from bench.scenarios import DEFAULT_GROUPS, GROUPS, SEED, TRACE, scenarios
from bench.servers import (
    DEFAULT_SERVERS,
    SERVERS,
    ensure_bench_node,
    ensure_peers_venv,
    ensure_reference_node,
    ensure_tools_venv,
    pin_cpus,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark coscribe against @y/websocket-server and a plain relay.",
        epilog="Example: .venv/bin/python bench/run.py --quick --repeat 1",
    )
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help=f"comma-separated subset of {','.join(SERVERS)} (default {','.join(DEFAULT_SERVERS)})",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_GROUPS),
        help=f"comma-separated subset of {','.join(GROUPS)} (default {','.join(DEFAULT_GROUPS)})",
    )
    parser.add_argument(
        "--procs", type=int, default=2, help="load generator worker processes (default 2)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="run every cell N times (servers interleaved) and report medians (default 3)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the server to the first CPU and the load generator to the second",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record coscribe with py-spy during each scenario's measured phase; the stacks "
        "go to bench/results/, the top functions into the report",
    )
    parser.add_argument(
        "--coscribe-database-url",
        metavar="URL",
        help="run coscribe on this PostgreSQL database (postgresql://...), in a fresh schema "
        "per run that is dropped afterwards; default: SQLite in a temp dir",
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
    bad = [s for s in args.scenario_list if s not in GROUPS]
    if bad:
        parser.error(f"unknown scenario(s) {', '.join(bad)}; choose from {','.join(GROUPS)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    url = args.coscribe_database_url
    if url and not url.startswith(("postgresql://", "postgres://")):
        parser.error("--coscribe-database-url must be a postgresql:// URL")
    return args


def raise_open_files_limit() -> None:
    """(f) holds 2,000 sockets in the server and as many in the load generator, more than the
    usual soft limit of 1,024 descriptors: raise it to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def display_url(url: str) -> str:
    """The URL without its password, for the report."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


def setup(servers: list[str], profile: bool) -> None:
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
    if profile and "coscribe" in servers:
        ensure_tools_venv()
    if shutil.which("taskset") is None:
        raise SystemExit("bench: taskset (util-linux) is needed for CPU pinning; or --no-pin")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup(args.server_list, args.profile)
    raise_open_files_limit()
    chosen = [s for s in scenarios(args.quick) if s.group in args.scenario_list]
    pin = None if args.no_pin else pin_cpus()
    sha, date = git_sha(), datetime.date.today().isoformat()
    stamp = f"{date}-{sha}{'-quick' if args.quick else ''}"
    profile_dir = RESULTS if args.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(exist_ok=True)
    url = args.coscribe_database_url
    options = Options(
        procs=args.procs,
        pin=pin,
        database_url=url,
        profile_dir=profile_dir,
        settle_s=1.0 if args.quick else 2.0,
    )
    if pin:
        pinning = f"server (and its children) on CPU {pin[0]}, load generator on CPU {pin[1]}"
    else:
        pinning = "off (--no-pin)" if args.no_pin else "off (fewer than 2 CPUs available)"
    meta = {
        "date": date,
        "sha": sha,
        "command": "bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "load_before": loadavg(),
        "pinning": pinning,
        "coscribe_database": "PostgreSQL" if url else "SQLite",
        "coscribe_storage": (
            f"PostgreSQL at {display_url(url)}, a fresh schema per run (dropped after it)"
            if url
            else "SQLite (WAL) in a fresh temp dir per run"
        )
        + ", every update appended to the update log (group commit)",
        "profiling": "coscribe recorded with py-spy (its figures include the sampling pauses)"
        if args.profile
        else "off",
    }
    log(f"CPU pinning: {pinning}")
    began = time.monotonic()
    runs: dict[tuple[str, str], list[Cell]] = {}
    profiles: dict[str, list[Path]] = {}
    for repeat in range(args.repeat):
        for scenario in chosen:
            log(f"== {scenario.title} (repetition {repeat + 1}/{args.repeat})")
            for server in args.server_list:
                log(f"  {server} ...")
                tag = f"-{stamp}-rep{repeat + 1}"
                cell = run_cell(scenario, server, options, tag)
                runs.setdefault((scenario.key, server), []).append(cell)
                if isinstance(cell.metrics.get("profile"), str):
                    profiles.setdefault(scenario.key, []).append(Path(cell.metrics["profile"]))
                shown = {k: v for k, v in cell.metrics.items() if not isinstance(v, list)}
                log(f"  {server}: {cell.status} in {cell.wall_s:.1f} s {json.dumps(shown)}")
                time.sleep(1)  # let sockets and the CPU settle between servers
    results = {key: combine(cells) for key, cells in runs.items()}
    elapsed = time.monotonic() - began
    meta["elapsed"] = f"{elapsed / 60:.1f} min" if elapsed >= 120 else f"{elapsed:.0f} s"
    meta["load_after"] = loadavg()
    if profiles:
        parts = []
        for scenario in chosen:
            paths = profiles.get(scenario.key)
            if paths:
                files = ", ".join(str(p.relative_to(ROOT)) for p in paths)
                parts += [f"### {scenario.title}", "", f"Stacks: {files}", ""]
                parts.append(pyspy.top_table(paths))
        meta["profile_text"] = "\n".join(parts)
    report = render_report(args, chosen, args.server_list, results, meta)
    print(report)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        # A run of a subset is kept under its own name and never replaces latest.md.
        complete = set(args.scenario_list) >= set(DEFAULT_GROUPS) and set(args.server_list) >= set(
            DEFAULT_SERVERS
        )
        subset = "" if complete else "-" + "".join(args.scenario_list)
        name = RESULTS / f"{stamp}{subset}.md"
        name.write_text(report)
        if complete:
            (RESULTS / ("latest-quick.md" if args.quick else "latest.md")).write_text(report)
        log(f"wrote {name.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
