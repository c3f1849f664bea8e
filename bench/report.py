"""The report: the markdown table, how to read it, the machine and the versions measured."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench import NODE_DIR, ROOT
from bench.cell import Cell
from bench.scenarios import RATIO_KEYS, Scenario
from bench.servers import SERVER_TITLES, SHORT_NAMES, peer_python

BASE = "coscribe"  # the server the ratio columns divide by the others


def _metric(cell: Cell | None, key: str) -> Any:
    return None if cell is None else cell.metrics.get(key)


def _value(cell: Cell | None, key: str, spec: str) -> str:
    """The figure, and for repeated runs its spread: `median (min-max)`."""
    text = _fmt(_metric(cell, key), spec)
    if cell is None or key not in cell.spread or text == "—":
        return text
    low, high = cell.spread[key]
    if low == high:
        return text
    return f"{text} ({_fmt(low, spec)}-{_fmt(high, spec)})"


def _ratio(mine: Cell | None, other: Cell | None, key: str) -> str:
    a, b = _metric(mine, key), _metric(other, key)
    if not isinstance(a, int | float) or not isinstance(b, int | float) or b <= 0:
        return "—"
    # Against a near-zero figure (the relay's room costs next to nothing) a ratio says nothing.
    return ">100x" if a / b > 100 else f"{a / b:.2f}x"


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


def server_title(server: str, coscribe_database: str = "SQLite") -> str:
    if server == "coscribe":
        return f"coscribe ({coscribe_database})"
    return SERVER_TITLES[server]


def render_table(
    chosen: list[Scenario],
    servers: list[str],
    results: dict[tuple[str, str], Cell],
    coscribe_database: str = "SQLite",
) -> str:
    """One column per server, then coscribe / each other server for the RATIO_KEYS rows."""
    others = [s for s in servers if s != BASE] if BASE in servers else []
    titles = [server_title(s, coscribe_database) for s in servers]
    titles += [f"{BASE} / {SHORT_NAMES[s]}" for s in others]
    columns = len(titles)
    lines = ["| scenario / metric | " + " | ".join(titles) + " |", "|---|" + "---:|" * columns]
    for scenario in chosen:
        lines.append(f"| **{scenario.title}** |" + " |" * columns)
        cells = [results.get((scenario.key, s)) for s in servers]
        statuses = [_status_cell(c) for c in cells] + [""] * len(others)
        lines.append("| status | " + " | ".join(statuses) + " |")
        for label, key, spec in scenario.rows:
            values = [_value(c, key, spec) for c in cells]
            base = results.get((scenario.key, BASE))
            for other in others:
                ratio = key in RATIO_KEYS
                values.append(
                    _ratio(base, results.get((scenario.key, other)), key) if ratio else ""
                )
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
    for name in ("websockets", "uvloop"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[f"relay (coscribe venv): {name}"] = metadata.version(name)
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
            f" Every cell ran {args.repeat} times, servers interleaved within each repetition "
            "(repetition 1: every scenario on every server in turn, then repetition 2, ...); "
            "the table shows the median of each figure and, in brackets, the lowest and "
            "highest of the runs. Ratios are of the medians."
            if args.repeat > 1
            else ""
        ),
        "",
        f"- CPU pinning: {meta['pinning']}",
        f"- coscribe's storage: {meta['coscribe_storage']}",
        f"- Profiling: {meta['profiling']}",
        "",
        render_table(chosen, servers, results, meta["coscribe_database"]),
        "",
        "## How to read this",
        "",
        "- Every server is started fresh for every scenario; CPU and RSS are per scenario.",
        "- **server CPU s**: utime+stime of the server process (and children) during the "
        "measured phase (writing + draining for (a)/(b)/(e), replay for (c), the joining waves "
        "for (d), connecting and the idle readings for (f)); **cores busy** is that CPU time "
        "divided by the phase's wall time — 1.00 means one core fully busy. Peak RSS is VmHWM "
        "at the end of the scenario.",
        "- **coscribe / X** columns: coscribe's median divided by X's, for CPU, p99 latency, "
        "(d)'s time-to-synced p99, (e)'s time and (f)'s memory figures; below 1 means "
        "coscribe needs less.",
        "- **relay**: plain `websockets` that answers sync step 1 with an empty step 2 and "
        "forwards updates and awareness to the room's other sockets (bench/peers/relay.py): "
        "the floor for fan-out. It keeps no document, so in (d) its joiners get an empty "
        "step 2: its (d) figures are the handshake alone, not a comparable sync.",
        "- **(e)**: time from the first send until every reader has all updates. **(f)**: "
        "VmRSS after a settle with no socket (idle), with one socket per note, and with all "
        "sockets; kB per socket = (RSS_all - RSS_one_per_note) / (sockets - notes); kB per "
        "room = (RSS_one_per_note - RSS_idle - notes * kB per socket) / notes.",
        "- **fan-out latency**: receive time - send time of each update at each other client, "
        "from a CLOCK_MONOTONIC send timestamp the writer embeds in the inserted text "
        "(percentiles from a histogram with 2 % buckets). **delivered updates/s**: deliveries "
        "counted at the readers ÷ (time from the first send to the last delivery, at least the "
        "write duration).",
        "- Clients connect in waves (10 per wave, at least 100 ms apart; (d): 5 per 200 ms; "
        "(f): 25 per 100 ms), a "
        "wave starting only when the previous one has synced. pycrdt-websocket 0.16.5 hangs the "
        "second of two clients opening a new room at the same instant; the waves (and, for (b), "
        "opening every room with one client before its other members come) keep that bug out "
        "of its numbers. Every server gets the same waves.",
        "- coscribe stores every update (group commit; the updates appended to its log are in "
        "the table); pycrdt-websocket and the reference server keep rooms in memory only, "
        "the relay keeps nothing.",
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
    if meta.get("profile_text"):
        out += ["", "## Profile of coscribe (py-spy)", "", meta["profile_text"]]
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
                    if not isinstance(p50, int | float) or not isinstance(p99, int | float):
                        continue
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
