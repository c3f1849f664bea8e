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
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEER_PYTHON = BENCH / ".venv-peers" / "bin" / "python"

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def idle_rss_mb(cmd: list[str], port: int, env: dict[str, str]) -> float:
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    sock.recv(4096)
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
        status = Path(f"/proc/{process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    rows = [(name, imported_rss_mb(sys.executable, statement)) for name, statement in LAYERS]
    with tempfile.TemporaryDirectory() as workdir:
        env = {
            **os.environ,
            "COSCRIBE_SQLITE_PATH": str(Path(workdir) / "idle.sqlite"),
            "COSCRIBE_AUTH": "false",
        }
        port = free_port()
        coscribe = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
        env["PYTHONPATH"] = str(ROOT)
        rows.append(("coscribe serve, idle (SQLite)", idle_rss_mb(coscribe, port, env)))
    if PEER_PYTHON.exists():
        port = free_port()
        peer = [str(PEER_PYTHON), str(BENCH / "peers" / "pycrdt_server.py"), "--port", str(port)]
        rows.append(("pycrdt-websocket server, idle (memory)", idle_rss_mb(peer, port, {})))
    else:
        print(f"({PEER_PYTHON} missing: run bench/run.py once to create it)", file=sys.stderr)
    print("| process | peak RSS (MB) |\n|---|---:|")
    for name, mb in rows:
        print(f"| {name} | {mb:.1f} |")


if __name__ == "__main__":
    main()
