"""The servers under test: installing what each needs, and starting one on a free port.

coscribe runs from this checkout; pycrdt-websocket in its own virtualenv (bench/.venv-peers,
kept out of the project's dependencies); the reference @y/websocket-server from tests/node.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import BENCH, NODE_DIR, ROOT, log
from tests.live_server import COSCRIBE
from tests.locks import file_lock
from tests.node_peer import REFERENCE_SERVER_SCRIPT, ensure_node_modules
from tests.processes import accepts_tcp, answers_health, free_port, stop_process, wait_ready

PEERS_VENV = BENCH / ".venv-peers"
PEER_SERVER = BENCH / "peers" / "pycrdt_server.py"

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


def ensure_bench_node() -> None:
    marker = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    with file_lock("bench-npm"):
        if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
            return
        log("npm ci in bench/node ...")
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600
        )


def ensure_reference_node() -> None:
    # The reference server lives in tests/node; its installer takes a lock shared with tests.
    ensure_node_modules()


def peer_python() -> Path:
    return PEERS_VENV / "bin" / "python"


def ensure_peers_venv() -> None:
    marker = PEERS_VENV / "bench-requirements.txt"
    wanted = "\n".join(PEER_REQUIREMENTS) + "\n"
    if marker.exists() and marker.read_text() == wanted and peer_python().exists():
        return
    with file_lock("bench-venv"):
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


@dataclass
class RunningServer:
    name: str
    proc: subprocess.Popen[Any]
    url_prefix: str
    log_path: Path


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
            COSCRIBE_MAX_HTTP_CONNECTIONS_PER_ADDRESS="1000000",
            COSCRIBE_MAX_CONNECTIONS_PER_NOTE="1000000",
            COSCRIBE_MAX_UPDATES_PER_S="1000000",
            COSCRIBE_UPDATE_BURST="1000000",
            # The peer server logs warnings only (bench/peers/pycrdt_server.py): same here, or
            # coscribe would format and write two request lines per connection it accepts.
            COSCRIBE_LOG_LEVEL="warning",
        )
        cmd = [*COSCRIBE, "serve", "--host", "127.0.0.1", "--port", str(port)]
        env["PYTHONPATH"] = str(ROOT)
        prefix, ready = f"ws://127.0.0.1:{port}/ws/", answers_health(f"http://127.0.0.1:{port}")
    elif name == "pycrdt":
        cmd = [str(peer_python()), str(PEER_SERVER), "--host", "127.0.0.1", "--port", str(port)]
        prefix, ready = f"ws://127.0.0.1:{port}/", accepts_tcp(port)
    elif name == "reference":
        cmd = ["node", str(REFERENCE_SERVER_SCRIPT), "--host", "127.0.0.1", "--port", str(port)]
        prefix, ready = f"ws://127.0.0.1:{port}/", accepts_tcp(port)
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
        wait_ready(proc, ready, START_TIMEOUT_S)
    except (RuntimeError, TimeoutError):
        stop(proc)
        raise
    return RunningServer(name, proc, prefix, log_path)


def stop(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process group we started, SIGKILL after `timeout` (and its leftovers)."""
    stop_process(proc, timeout, group=True)
