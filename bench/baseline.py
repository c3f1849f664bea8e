"""Where a server's memory floor comes from: the peak RSS of a fresh Python process after
importing each layer of coscribe's stack, and of both servers idle after start.

    .venv/bin/python bench/baseline.py

Prints a markdown table. Each figure is a new process (ru_maxrss after the imports and a
gc.collect()), so the rows are cumulative layers, not sums. The idle servers are started on
a free port, asked for once (/health for coscribe, a TCP connect for pycrdt-websocket), and
their VmHWM read from /proc.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script (bench/baseline.py): make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ROOT
from bench.servers import PEER_SERVER, peer_python
from tests.live_server import COSCRIBE
from tests.processes import accepts_tcp, answers_health, free_port, stop_process, wait_ready

PEER_PYTHON = peer_python()

LAYERS = [
    ("python", "pass"),
    ("+ uvicorn, websockets", "import uvicorn, websockets"),
    ("+ pycrdt", "import uvicorn, websockets, pycrdt"),
    ("+ starlette", "import uvicorn, websockets, pycrdt, starlette.applications"),
    ("+ sqlalchemy", "import uvicorn, websockets, pycrdt, starlette.applications, sqlalchemy"),
    (
        "+ pydantic",
        "import uvicorn, websockets, pycrdt, starlette.applications, sqlalchemy, pydantic",
    ),
    ("coscribe's server modules (server.app)", "import server.app"),
    ("+ the REST API built (routes, models, OpenAPI)", "import server.rest; server.rest.routes()"),
]


def imported_rss_mb(python: str, statement: str) -> float:
    code = (
        f"import gc, resource\n{statement}\ngc.collect()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    out = subprocess.run(
        [python, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return float(out.strip())


def idle_rss_mb(cmd: list[str], ready: Callable[[], bool], env: dict[str, str]) -> float:
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(process, ready, 30)
        time.sleep(1)  # idle for a moment after the first answer, as a server waits for clients
        status = Path(f"/proc/{process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    finally:
        stop_process(process, 10)


def main() -> None:
    rows = [(name, imported_rss_mb(sys.executable, statement)) for name, statement in LAYERS]
    with tempfile.TemporaryDirectory() as workdir:
        env = {
            **os.environ,
            "COSCRIBE_SQLITE_PATH": str(Path(workdir) / "idle.sqlite"),
            "COSCRIBE_AUTH": "false",
        }
        port = free_port()
        coscribe = [*COSCRIBE, "serve", "--port", str(port)]
        env["PYTHONPATH"] = str(ROOT)
        ready = answers_health(f"http://127.0.0.1:{port}")
        rows.append(("coscribe serve, idle (SQLite)", idle_rss_mb(coscribe, ready, env)))
    if PEER_PYTHON.exists():
        port = free_port()
        peer = [str(PEER_PYTHON), str(PEER_SERVER), "--port", str(port)]
        idle = idle_rss_mb(peer, accepts_tcp(port), {})
        rows.append(("pycrdt-websocket server, idle (memory)", idle))
    else:
        print(f"({PEER_PYTHON} missing: run bench/run.py once to create it)", file=sys.stderr)
    print("| process | peak RSS (MB) |\n|---|---:|")
    for name, mb in rows:
        print(f"| {name} | {mb:.1f} |")


if __name__ == "__main__":
    main()
