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
from bench.scenarios import Scenario
from bench.servers import SERVER_TITLES, peer_python


def _metric(cell: Cell | None, key: str) -> Any:
    if cell is None:
        return None
    if key == "server_cpu":
        cpu, cores = cell.metrics.get("server_cpu_s"), cell.metrics.get("server_cores")
        return None if cpu is None or cores is None else f"{cpu:.2f} ({cores:.2f})"
    return cell.metrics.get(key)


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
