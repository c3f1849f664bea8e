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
import contextlib
import datetime
import fcntl
import importlib
import json
import os
import platform
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NODE_DIR = BENCH / "node"
LOADGEN = NODE_DIR / "loadgen.mjs"
PEERS_VENV = BENCH / ".venv-peers"
PEER_SERVER = BENCH / "peers" / "pycrdt_server.py"
REFERENCE_SERVER = ROOT / "tests" / "node" / "reference-server.mjs"
RESULTS = BENCH / "results"
DATA = ROOT / "tests" / "fixtures"
TRACE = DATA / "editing-traces" / "sequential_traces" / "automerge-paper.json.gz"
SEED = DATA / "yrs-bench-input" / "b4-update.bin"
SEED_TEXT_NAME = "text"
SEED_CHARS = 104_852

# The peer server's environment, pinned; uvicorn, websockets, uvloop and httptools at the same
# versions as the project's own venv so that the comparison is between the room code.
PEER_REQUIREMENTS = [
    "pycrdt-websocket==0.16.5",
    "pycrdt==0.14.13",
    "uvicorn==0.54.0",
    "websockets==17.4",
    "uvloop==0.23.0",
    "httptools==0.9.0",
]

SERVERS = ("coscribe", "pycrdt", "reference")
SERVER_TITLES = {
    "coscribe": "coscribe (SQLite)",
    "pycrdt": "pycrdt-websocket (memory)",
    "reference": "@y/websocket-server (memory)",
}
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- scenarios --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str  # a100, a500, b, c, d
    group: str  # a, b, c, d: what --scenarios selects
    title: str
    loadgen: str  # loadgen scenario name
    args: dict[str, Any]
    # (label, metric key, format) rows for the table
    rows: tuple[tuple[str, str, str], ...]
    timeout_s: float


WRITE_ROWS = (
    ("delivered updates/s", "delivered_per_s", "{:,.0f}"),
    ("fan-out latency p50 (ms)", "latency_p50_ms", "{:.1f}"),
    ("fan-out latency p99 (ms)", "latency_p99_ms", "{:.1f}"),
    ("delivered / expected", "delivery_ratio", "{:.1%}"),
    ("disconnected clients", "disconnects", "{:d}"),
)
COMMON_ROWS = (
    ("server CPU s (cores busy)", "server_cpu", "{}"),
    ("server peak RSS (MB)", "server_rss_mb", "{:.0f}"),
    ("load generator CPU s", "loadgen_cpu_s", "{:.1f}"),
    ("server waited for a CPU (run queue), s", "server_runqueue_wait_s", "{:.2f}"),
    ("other processes' CPU meanwhile (cores)", "others_cores", "{:.2f}"),
)


def scenarios(quick: bool) -> list[Scenario]:
    waves = {"wave-size": 10, "wave-ms": 100}
    duration = 3 if quick else 15
    readers_small, readers_big = (20, 50) if quick else (100, 500)
    rooms = 20 if quick else 200
    joiners = 20 if quick else 100
    fanout_timeout = 60 + duration + 30
    return [
        Scenario(
            "a100",
            "a",
            f"(a) one room, 1 writer + {readers_small} readers, "
            f"update every 10 ms for {duration} s",
            "fanout",
            {**waves, "readers": readers_small, "interval-ms": 10, "duration-s": duration},
            WRITE_ROWS + COMMON_ROWS,
            fanout_timeout + readers_small / 10 * 1.0,
        ),
        Scenario(
            "a500",
            "a",
            f"(a) one room, 1 writer + {readers_big} readers, update every 10 ms for {duration} s",
            "fanout",
            {**waves, "readers": readers_big, "interval-ms": 10, "duration-s": duration},
            WRITE_ROWS + COMMON_ROWS,
            fanout_timeout + readers_big / 10 * 1.0,
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
                *COMMON_ROWS,
            ),
            60 + joiners / 5 * 1.0 + 60,
        ),
    ]


# --- processes ------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """utime+stime of pid and its live descendants, plus the children they already reaped."""
    total = 0
    for p in [pid, *_descendants(pid)]:
        fields = _stat_fields(p)
        if fields:
            # after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
            total += sum(int(x) for x in fields[11:15])
    return total / CLK_TCK


def runqueue_wait_s(pid: int) -> float:
    """Time the threads of pid and its descendants spent runnable but waiting for a CPU
    (/proc/PID/task/TID/schedstat, second field): how much other load held the server back."""
    total_ns = 0
    for p in [pid, *_descendants(pid)]:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, NotADirectoryError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(FileNotFoundError, ProcessLookupError, IndexError):
                    total_ns += int((task / "schedstat").read_text().split()[1])
    return total_ns / 1e9


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy (not idle or iowait) since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM of pid plus that of its live descendants, in MB."""
    total_kb = 0
    seen = False
    for p in [pid, *_descendants(pid)]:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
                    seen = True
    return total_kb / 1024 if seen else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process group we started, then SIGKILL it if it does not go."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"  pid {proc.pid} ignored SIGTERM for {timeout} s: SIGKILL")
    # Whatever is left of its group (the server's own children) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


# --- setup ----------------------------------------------------------------------------------


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    path = Path(tempfile.gettempdir()) / f"coscribe-bench-{name}.lock"
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_bench_node() -> None:
    marker = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    with file_lock("npm"):
        if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
            return
        log("npm ci in bench/node ...")
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600
        )


def ensure_reference_node() -> None:
    # The reference server lives in tests/node; its installer takes a lock shared with tests.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    importlib.import_module("tests.node_peer").ensure_node_modules()


def peer_python() -> Path:
    return PEERS_VENV / "bin" / "python"


def ensure_peers_venv() -> None:
    marker = PEERS_VENV / "bench-requirements.txt"
    wanted = "\n".join(PEER_REQUIREMENTS) + "\n"
    if marker.exists() and marker.read_text() == wanted and peer_python().exists():
        return
    with file_lock("venv"):
        if marker.exists() and marker.read_text() == wanted and peer_python().exists():
            return
        log(f"creating {PEERS_VENV.relative_to(ROOT)} with {', '.join(PEER_REQUIREMENTS)} ...")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
        subprocess.run(
            [str(peer_python()), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS],
            check=True,
            timeout=900,
        )
        marker.write_text(wanted)


# --- servers --------------------------------------------------------------------------------


@dataclass
class RunningServer:
    name: str
    proc: subprocess.Popen[Any]
    url_prefix: str
    log_path: Path


def _wait_tcp(port: int, proc: subprocess.Popen[Any], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} during start-up")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"not listening after {START_TIMEOUT_S} s")


def _wait_health(port: int, proc: subprocess.Popen[Any], deadline: float) -> None:
    url = f"http://127.0.0.1:{port}/health"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} during start-up")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"/health did not answer within {START_TIMEOUT_S} s")


def coscribe_binary() -> str:
    candidate = Path(sys.executable).parent / "coscribe"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("coscribe")
    if not found:
        raise RuntimeError("the `coscribe` console script is not installed in this venv")
    return found


def start_server(name: str, workdir: Path) -> RunningServer:
    port = free_port()
    log_path = workdir / f"{name}.log"
    env = dict(os.environ)
    if name == "coscribe":
        for variable in ("DATABASE_URL", "COSCRIBE_DB_DRIVER", "REDIS_URL"):
            env.pop(variable, None)
        env["COSCRIBE_SQLITE_PATH"] = str(workdir / "coscribe.sqlite")
        # The load comes from one address, faster than any person types, to servers that have
        # no access control: lift coscribe's per-client limits and auth (loopback only) so the
        # comparison is between the sync paths.
        env.update(
            COSCRIBE_AUTH="false",
            COSCRIBE_MAX_CONNECTIONS_PER_ADDRESS="1000000",
            COSCRIBE_MAX_CONNECTIONS_PER_NOTE="1000000",
            COSCRIBE_MAX_UPDATES_PER_S="1000000",
            COSCRIBE_UPDATE_BURST="1000000",
            # The peer server logs warnings only (bench/peers/pycrdt_server.py): same here, or
            # coscribe would format and write two request lines per connection it accepts.
            COSCRIBE_LOG_LEVEL="warning",
        )
        cmd = [coscribe_binary(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        prefix, wait = f"ws://127.0.0.1:{port}/ws/", _wait_health
    elif name == "pycrdt":
        cmd = [str(peer_python()), str(PEER_SERVER), "--host", "127.0.0.1", "--port", str(port)]
        prefix, wait = f"ws://127.0.0.1:{port}/", _wait_tcp
    elif name == "reference":
        cmd = ["node", str(REFERENCE_SERVER), "--host", "127.0.0.1", "--port", str(port)]
        prefix, wait = f"ws://127.0.0.1:{port}/", _wait_tcp
    else:
        raise ValueError(name)
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so it can be stopped whole
        )
    try:
        wait(port, proc, time.monotonic() + START_TIMEOUT_S)
    except (RuntimeError, TimeoutError):
        stop_process(proc)
        raise
    return RunningServer(name, proc, prefix, log_path)


# --- one cell: a scenario on a server -------------------------------------------------------


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
            stop_process(gen, 5)
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
            stop_process(server.proc)
        if cell.status != "ok":
            log(f"  {server_name}: {cell.status}: {cell.error}")
            log("  server log tail:\n" + tail(server.log_path))
            log("  load generator log tail:\n" + tail(loadgen_log))
    cell.wall_s = time.monotonic() - started
    return cell


# --- report ---------------------------------------------------------------------------------


def _metric(cell: Cell | None, key: str) -> Any:
    if cell is None:
        return None
    if key == "server_cpu":
        cpu, cores = cell.metrics.get("server_cpu_s"), cell.metrics.get("server_cores")
        return None if cpu is None or cores is None else f"{cpu:.2f} ({cores:.2f})"
    return cell.metrics.get(key)


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


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    try:
        if spec == "{:d}":
            return spec.format(int(value))
        if spec == "{:,d}":
            return spec.format(int(value))
        return spec.format(value)
    except (ValueError, TypeError):
        return str(value)


def _status_cell(cell: Cell | None) -> str:
    if cell is None:
        return "not run"
    if cell.status == "ok":
        return "ok"
    error = cell.error.replace("|", "/").replace("\n", " ")
    return f"**{cell.status}**: {error[:140]}"


def render_table(
    chosen: list[Scenario], servers: list[str], results: dict[tuple[str, str], Cell]
) -> str:
    header = "| scenario / metric | " + " | ".join(SERVER_TITLES[s] for s in servers) + " |"
    lines = [header, "|---|" + "---:|" * len(servers)]
    for scenario in chosen:
        lines.append(f"| **{scenario.title}** |" + " |" * len(servers))
        cells = [results.get((scenario.key, s)) for s in servers]
        lines.append("| status | " + " | ".join(_status_cell(c) for c in cells) + " |")
        for label, key, spec in scenario.rows:
            values = [_fmt(_metric(c, key), spec) for c in cells]
            lines.append(f"| {label} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def _run_text(cmd: list[str]) -> str:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine_info() -> dict[str, str]:
    cpu_model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": _run_text(["node", "--version"]),
    }


def package_versions() -> dict[str, str]:
    from importlib import metadata

    versions: dict[str, str] = {}
    for name in ("pycrdt", "uvicorn", "websockets", "uvloop", "starlette", "sqlalchemy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[f"coscribe venv: {name}"] = metadata.version(name)
    if peer_python().exists():
        script = (
            "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in "
            "['pycrdt-websocket', 'pycrdt', 'uvicorn', 'websockets', 'uvloop']}))"
        )
        out = _run_text([str(peer_python()), "-c", script])
        with contextlib.suppress(json.JSONDecodeError):
            for name, version in json.loads(out).items():
                versions[f"peer venv: {name}"] = version
    ref_pkg = ROOT / "tests" / "node" / "node_modules" / "@y" / "websocket-server" / "package.json"
    with contextlib.suppress(OSError, json.JSONDecodeError):
        versions["reference: @y/websocket-server"] = json.loads(ref_pkg.read_text())["version"]
    for name in ("yjs", "y-protocols", "lib0", "ws"):
        pkg = NODE_DIR / "node_modules" / name / "package.json"
        with contextlib.suppress(OSError, json.JSONDecodeError):
            versions[f"load generator: {name}"] = json.loads(pkg.read_text())["version"]
    return versions


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def render_report(
    args: argparse.Namespace,
    chosen: list[Scenario],
    servers: list[str],
    results: dict[tuple[str, str], Cell],
    meta: dict[str, str],
) -> str:
    info = machine_info()
    versions = package_versions()
    out = [
        f"# coscribe benchmark — {meta['date']} ({meta['sha']})",
        "",
        f"`{meta['command']}` — {'QUICK smoke run (small counts)' if args.quick else 'full run'}"
        f", took {meta['elapsed']}."
        + (
            f" Every cell ran {args.repeat} times (servers interleaved); the table shows the "
            "median of each figure over the runs, the runs' own values of the first figure "
            "are listed below it."
            if args.repeat > 1
            else ""
        ),
        "",
        render_table(chosen, servers, results),
        "",
        "## How to read this",
        "",
        "- Every server is started fresh for every scenario; CPU and RSS are per scenario.",
        "- **server CPU s (cores busy)**: utime+stime of the server process (and children) "
        "during the measured phase (writing + draining for (a)/(b), replay for (c), the joining "
        "waves for (d)), and in brackets that CPU time divided by the phase's wall time — "
        "1.00 means one core fully busy. Peak RSS is VmHWM at the end of the scenario.",
        "- **fan-out latency**: receive time - send time of each update at each other client, "
        "from a CLOCK_MONOTONIC send timestamp the writer embeds in the inserted text "
        "(percentiles from a histogram with 2 % buckets). **delivered updates/s**: deliveries "
        "counted at the readers ÷ (time from the first send to the last delivery, at least the "
        "write duration).",
        "- Clients connect in waves (10 per wave, at least 100 ms apart; (d): 5 per 200 ms), a "
        "wave starting only when the previous one has synced. pycrdt-websocket 0.16.5 hangs the "
        "second of two clients opening a new room at the same instant; the waves (and, for (b), "
        "opening every room with one client before its other members come) keep that bug out "
        "of its numbers. Every server gets the same waves.",
        "- coscribe stores every update in SQLite (group commit); pycrdt-websocket and the "
        "reference server keep rooms in memory only.",
        f"- Load average before/after the run: {meta['load_before']} / {meta['load_after']} "
        "(other people use this machine; the load generator shares its cores with the server).",
        "",
        "## Machine",
        "",
    ]
    out += [f"- {key}: {value}" for key, value in info.items()]
    out += ["", "## Versions", ""]
    out += [f"- {key}: {value}" for key, value in versions.items()]
    notes = [
        f"- {key} / {server}: {cell.status}: {cell.error}"
        for (key, server), cell in results.items()
        if cell.status != "ok"
    ]
    if notes:
        out += ["", "## Failures", "", *notes]
    if args.repeat > 1:
        out += ["", "## Single runs (first figure of each scenario)", ""]
        for scenario in chosen:
            label, key, spec = scenario.rows[0]
            for server in servers:
                cell = results.get((scenario.key, server))
                if cell is None or not cell.runs:
                    continue
                values = ", ".join(
                    _fmt(_metric(run, key), spec)
                    + ("" if run.status == "ok" else f" ({run.status})")
                    for run in cell.runs
                )
                out.append(f"- {scenario.key} / {server}: {label}: {values}")
        out += ["", "## Latency p50 / p99 of single runs (ms)", ""]
        for scenario in chosen:
            for server in servers:
                cell = results.get((scenario.key, server))
                if cell is None or not cell.runs:
                    continue
                pairs = []
                for run in cell.runs:
                    p50 = run.metrics.get("latency_p50_ms", run.metrics.get("sync_p50_ms"))
                    p99 = run.metrics.get("latency_p99_ms", run.metrics.get("sync_p99_ms"))
                    if p50 is not None and p99 is not None:
                        pairs.append(f"{p50:.1f} / {p99:.1f}")
                if pairs:
                    out.append(f"- {scenario.key} / {server}: " + "; ".join(pairs))
    out += [
        "",
        "## Wall time per cell (s)",
        "",
        ", ".join(f"{key}/{server} {cell.wall_s:.0f}" for (key, server), cell in results.items()),
        "",
    ]
    return "\n".join(out)


def git_sha() -> str:
    sha = _run_text(["git", "rev-parse", "--short", "HEAD"])
    return sha or "nogit"


# --- main -----------------------------------------------------------------------------------


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
