"""One cell of the table: a scenario run against one server, and the median of several runs."""

from __future__ import annotations

import contextlib
import json
import queue
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench import NODE_DIR, log
from bench import profile as pyspy
from bench.procfs import cpu_seconds, machine_busy_s, peak_rss_mb, rss_kb, runqueue_wait_s
from bench.scenarios import Scenario
from bench.servers import STATELESS, pinned, start_server, stop, stop_server

LOADGEN = NODE_DIR / "loadgen.mjs"


@dataclass
class Cell:
    status: str = "ok"  # ok | failed | timeout
    error: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    runs: list[Cell] = field(default_factory=list)  # the single runs, when repeated
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)  # min, max over runs


@dataclass(frozen=True)
class Options:
    """How a cell runs: CPU pinning, coscribe's database, profiling."""

    procs: int = 2
    pin: tuple[int, int] | None = None  # (server CPU, load generator CPU)
    database_url: str | None = None  # coscribe on PostgreSQL (a schema per run) instead of SQLite
    profile_dir: Path | None = None  # record coscribe with py-spy into this folder
    settle_s: float = 2.0  # idle memory: wait this long before reading RSS


def _reader(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def loadgen_command(scenario: Scenario, prefix: str, procs: int, stateless: bool) -> list[str]:
    cmd = ["node", str(LOADGEN), scenario.loadgen, "--url-prefix", prefix]
    cmd += ["--procs", str(procs)]
    for key, value in scenario.args.items():
        cmd += [f"--{key}", str(value)]
    if stateless:
        cmd.append("--stateless")
    return cmd


def settled_rss_kb(pid: int, settle_s: float) -> int | None:
    """VmRSS once it holds still: after `settle_s`, then every 0.5 s until two readings are
    within 64 kB of each other (at most 4 x `settle_s` more)."""
    time.sleep(settle_s)
    last = rss_kb(pid)
    deadline = time.monotonic() + 4 * settle_s
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = rss_kb(pid)
        if last is None or now is None or abs(now - last) <= 64:
            return now
        last = now
    return last


def idle_memory(metrics: dict[str, Any], scenario: Scenario) -> None:
    """(f): idle RSS, kB per socket and kB per room from the three readings (bench/README.md)."""
    idle, first, full = (metrics.get(f"rss_{s}_kb") for s in ("idle", "first", "all"))
    if idle is None or first is None or full is None:
        return
    rooms = scenario.args["rooms"]
    sockets = rooms * scenario.args["per-room"]
    per_socket = (full - first) / (sockets - rooms)
    metrics["idle_rss_mb"] = idle / 1024
    metrics["rss_first_mb"] = first / 1024
    metrics["rss_all_mb"] = full / 1024
    metrics["kb_per_socket"] = per_socket
    metrics["kb_per_room"] = (first - idle - rooms * per_socket) / rooms


def run_cell(scenario: Scenario, server_name: str, options: Options, tag: str = "") -> Cell:
    cell = Cell()
    started = time.monotonic()
    server_cpu, loadgen_cpu = options.pin if options.pin else (None, None)
    profiling = options.profile_dir is not None and server_name == "coscribe"
    profile_out = (
        options.profile_dir / f"profile-{scenario.key}{tag}.folded.txt"
        if options.profile_dir is not None
        else None
    )
    profiler = None
    with tempfile.TemporaryDirectory(prefix=f"coscribe-bench-{server_name}-") as tmp:
        workdir = Path(tmp)
        try:
            server = start_server(
                server_name,
                workdir,
                cpu=server_cpu,
                database_url=options.database_url if server_name == "coscribe" else None,
            )
        except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
            cell.status, cell.error = "failed", f"server did not start: {exc}"
            log(tail(workdir / f"{server_name}.log"))
            return cell
        pid = server.proc.pid
        loadgen_log = workdir / "loadgen.log"
        stored = None
        try:
            cpu_start = cpu_seconds(pid)
            cpu_run, wait_run, busy_run = cpu_start, runqueue_wait_s(pid), machine_busy_s()
            t_run = time.monotonic()
            with loadgen_log.open("w") as err:
                command = loadgen_command(
                    scenario, server.url_prefix, options.procs, server_name in STATELESS
                )
                gen = subprocess.Popen(
                    pinned(command, loadgen_cpu),
                    cwd=NODE_DIR,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                    start_new_session=True,
                )
            memory: dict[str, int | None] = {}
            lines: queue.Queue[str | None] = queue.Queue()
            threading.Thread(target=_reader, args=(gen.stdout, lines), daemon=True).start()
            deadline = started + scenario.timeout_s
            result = None
            while result is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    cell.status = "timeout"
                    cell.error = f"no result within {scenario.timeout_s:.0f} s"
                    break
                try:
                    line = lines.get(timeout=remaining)
                except queue.Empty:
                    continue
                if line is None:
                    cell.status = "failed"
                    cell.error = f"load generator exited without a result: {tail(loadgen_log, 5)}"
                    break
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event.get("event") == "phase":
                    if profiling and profile_out is not None:
                        profiler = pyspy.start(pid, profile_out, loadgen_cpu)
                    cpu_run, t_run = cpu_seconds(pid), time.monotonic()
                    wait_run, busy_run = runqueue_wait_s(pid), machine_busy_s()
                elif event.get("event") == "measure":
                    # (f): read the server's memory once it has settled, then let it go on.
                    stage_rss = settled_rss_kb(pid, options.settle_s)
                    memory[f"rss_{event.get('stage')}_kb"] = stage_rss
                    log(f"  {server_name}: {event.get('sockets')} sockets: RSS {stage_rss} kB")
                    if gen.stdin is not None:
                        with contextlib.suppress(OSError):  # it exited: the loop sees it
                            gen.stdin.write("\n")
                            gen.stdin.flush()
                elif event.get("event") == "result":
                    result = event
            t_end = time.monotonic()
            cpu_end = cpu_seconds(pid)
            wait_end, busy_end = runqueue_wait_s(pid), machine_busy_s()
            rss = peak_rss_mb(pid)
            alive = server.proc.poll() is None
            profiled = profiler is not None and profile_out is not None
            if profiled and pyspy.stop(profiler, profile_out):
                cell.metrics["profile"] = str(profile_out)
            stop(gen, 5)
            if result is not None:
                cell.status = result.get("status", "failed")
                cell.error = result.get("error") or ""
                cell.metrics.update(result.get("metrics") or {})
                cell.versions = result.get("versions") or {}
            cell.metrics.update(memory)
            idle_memory(cell.metrics, scenario)
            if not alive:
                cell.status = "failed"
                cell.error = f"server exited ({server.proc.returncode}) {cell.error}".strip()
            run_cpu = cpu_end - cpu_run
            # The load generator's own span of the measured phase, when it reports one (it
            # leaves out the pause it makes so that our CPU sample precedes the load).
            run_wall = max(1e-6, cell.metrics.get("phase_s") or (t_end - t_run))
            cell.metrics["server_cpu_s"] = run_cpu
            cell.metrics["server_cpu_total_s"] = cpu_end - cpu_start
            cell.metrics["server_cores"] = run_cpu / run_wall
            cell.metrics["server_runqueue_wait_s"] = wait_end - wait_run
            # Everything else the machine did meanwhile (other people's work, the kernel), in
            # cores: busy CPU of the whole machine minus the server's and the load generator's.
            others = (busy_end - busy_run) - run_cpu - cell.metrics.get("loadgen_cpu_s", 0.0)
            cell.metrics["others_cores"] = max(0.0, others) / max(1e-6, t_end - t_run)
            if rss is not None:
                cell.metrics["server_rss_mb"] = rss
        finally:
            if profiler is not None and profiler.poll() is None:
                profiler.kill()
                profiler.wait()
            stored = stop_server(server)
        if stored is not None:
            cell.metrics["stored_updates"] = stored
        if cell.status != "ok":
            log(f"  {server_name}: {cell.status}: {cell.error}")
            log("  server log tail:\n" + tail(server.log_path))
            log("  load generator log tail:\n" + tail(loadgen_log))
    cell.wall_s = time.monotonic() - started
    return cell


def combine(cells: list[Cell]) -> Cell:
    """Several runs of one cell: the median of every figure, the worst status."""
    if len(cells) == 1:
        return cells[0]
    bad = [c for c in cells if c.status != "ok"]
    out = Cell(wall_s=sum(c.wall_s for c in cells), runs=cells)
    if bad:
        out.status = "timeout" if any(c.status == "timeout" for c in bad) else "failed"
        out.error = f"{len(bad)} of {len(cells)} runs: {bad[0].error}"
    keys = {k for c in cells for k, v in c.metrics.items() if isinstance(v, int | float)}
    for key in keys:
        values = [c.metrics[key] for c in cells if isinstance(c.metrics.get(key), int | float)]
        out.metrics[key] = statistics.median(values)
        out.spread[key] = (min(values), max(values))
    for c in cells:
        out.versions.update(c.versions)
    return out


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
