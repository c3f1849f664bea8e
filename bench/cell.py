"""One cell of the table: a scenario run against one server, and the median of several runs."""

from __future__ import annotations

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
from bench.procfs import cpu_seconds, machine_busy_s, peak_rss_mb, runqueue_wait_s
from bench.scenarios import Scenario
from bench.servers import start_server, stop

LOADGEN = NODE_DIR / "loadgen.mjs"


@dataclass
class Cell:
    status: str = "ok"  # ok | failed | timeout
    error: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    runs: list[Cell] = field(default_factory=list)  # the single runs, when repeated


def _reader(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def loadgen_command(scenario: Scenario, prefix: str, procs: int) -> list[str]:
    cmd = ["node", str(LOADGEN), scenario.loadgen, "--url-prefix", prefix]
    cmd += ["--procs", str(procs)]
    for key, value in scenario.args.items():
        cmd += [f"--{key}", str(value)]
    return cmd


def run_cell(scenario: Scenario, server_name: str, procs: int) -> Cell:
    cell = Cell()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"coscribe-bench-{server_name}-") as tmp:
        workdir = Path(tmp)
        try:
            server = start_server(server_name, workdir)
        except (RuntimeError, TimeoutError, OSError) as exc:
            cell.status, cell.error = "failed", f"server did not start: {exc}"
            log(tail(workdir / f"{server_name}.log"))
            return cell
        pid = server.proc.pid
        loadgen_log = workdir / "loadgen.log"
        try:
            cpu_start = cpu_seconds(pid)
            cpu_run, wait_run, busy_run = cpu_start, runqueue_wait_s(pid), machine_busy_s()
            t_run = time.monotonic()
            with loadgen_log.open("w") as err:
                gen = subprocess.Popen(
                    loadgen_command(scenario, server.url_prefix, procs),
                    cwd=NODE_DIR,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                    start_new_session=True,
                )
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
                    cpu_run, t_run = cpu_seconds(pid), time.monotonic()
                    wait_run, busy_run = runqueue_wait_s(pid), machine_busy_s()
                elif event.get("event") == "result":
                    result = event
            t_end = time.monotonic()
            cpu_end = cpu_seconds(pid)
            wait_end, busy_end = runqueue_wait_s(pid), machine_busy_s()
            rss = peak_rss_mb(pid)
            alive = server.proc.poll() is None
            stop(gen, 5)
            if result is not None:
                cell.status = result.get("status", "failed")
                cell.error = result.get("error") or ""
                cell.metrics = dict(result.get("metrics") or {})
                cell.versions = result.get("versions") or {}
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
            stop(server.proc)
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
    for c in cells:
        out.versions.update(c.versions)
    return out


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
