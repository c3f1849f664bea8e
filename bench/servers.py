"""The servers under test: installing what each needs, and starting one on a free port.

coscribe runs from this checkout (SQLite in a fresh temp dir, or PostgreSQL in a schema of its
own); pycrdt-websocket in its own virtualenv (bench/.venv-peers, kept out of the project's
dependencies); the reference @y/websocket-server from tests/node; the relay (the floor:
plain `websockets`, no CRDT, no storage) from bench/peers/relay.py on the project's venv.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import BENCH, NODE_DIR, ROOT, log
from tests.live_server import COSCRIBE
from tests.locks import file_lock
from tests.node_peer import REFERENCE_SERVER_SCRIPT, ensure_node_modules
from tests.processes import accepts_tcp, answers_health, free_port, stop_process, wait_ready

PEERS_VENV = BENCH / ".venv-peers"
PEER_SERVER = BENCH / "peers" / "pycrdt_server.py"
RELAY_SERVER = BENCH / "peers" / "relay.py"
TOOLS_VENV = BENCH / ".venv-tools"
TOOLS_REQUIREMENTS = ["py-spy==0.4.2"]

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

SERVERS = ("coscribe", "pycrdt", "reference", "relay")
DEFAULT_SERVERS = ("coscribe", "reference", "relay")
SERVER_TITLES = {
    "coscribe": "coscribe (SQLite)",
    "pycrdt": "pycrdt-websocket (memory)",
    "reference": "@y/websocket-server (memory)",
    "relay": "relay (websockets, no CRDT)",
}
SHORT_NAMES = {"coscribe": "coscribe", "pycrdt": "pycrdt", "reference": "Node", "relay": "relay"}
# Servers that hold no document: a joining client gets an empty sync step 2, and an update is
# not echoed to its sender (the load generator is told, see bench/node/loadgen.mjs).
STATELESS = {"relay"}
# The load comes from one address, faster than any person types, to servers that have no
# access control: lift coscribe's per-client limits and auth (loopback only) so the comparison
# is between the sync paths.
BENCH_SETTINGS = {
    "COSCRIBE_AUTH": "false",
    "COSCRIBE_MAX_CONNECTIONS_PER_ADDRESS": "1000000",
    "COSCRIBE_MAX_HTTP_CONNECTIONS_PER_ADDRESS": "1000000",
    "COSCRIBE_MAX_CONNECTIONS_PER_NOTE": "1000000",
    "COSCRIBE_MAX_UPDATES_PER_S": "1000000",
    "COSCRIBE_UPDATE_BURST": "1000000",
    # The peer server logs warnings only (bench/peers/pycrdt_server.py): same here, or coscribe
    # would format and write two request lines per connection it accepts.
    "COSCRIBE_LOG_LEVEL": "warning",
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


def tools_python() -> Path:
    return TOOLS_VENV / "bin" / "python"


def py_spy() -> Path:
    return TOOLS_VENV / "bin" / "py-spy"


def ensure_tools_venv() -> None:
    """bench/.venv-tools with py-spy (for --profile), kept out of the project's venv."""
    marker = TOOLS_VENV / "bench-requirements.txt"
    wanted = "\n".join(TOOLS_REQUIREMENTS) + "\n"
    if marker.exists() and marker.read_text() == wanted and py_spy().exists():
        return
    with file_lock("bench-tools-venv"):
        if marker.exists() and marker.read_text() == wanted and py_spy().exists():
            return
        log(f"creating {TOOLS_VENV.relative_to(ROOT)} with {', '.join(TOOLS_REQUIREMENTS)} ...")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(TOOLS_VENV)], check=True)
        subprocess.run(
            [str(tools_python()), "-m", "pip", "install", "-q", *TOOLS_REQUIREMENTS],
            check=True,
            timeout=900,
        )
        marker.write_text(wanted)


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    """`cmd` run on one CPU (taskset; its children inherit the affinity), or as it is."""
    return cmd if cpu is None else ["taskset", "--cpu-list", str(cpu), *cmd]


def pin_cpus() -> tuple[int, int] | None:
    """The CPUs for the server and the load generator: the first two this process may use."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


@dataclass
class RunningServer:
    name: str
    proc: subprocess.Popen[Any]
    url_prefix: str
    log_path: Path
    sqlite_path: Path | None = None
    # PostgreSQL: the admin URL and the schema made for this run (dropped by stop_server).
    pg_admin_url: str | None = None
    pg_schema: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def _new_pg_schema(admin_url: str) -> str:
    """A fresh schema in the given database (as tests/conftest.py does), so a run never meets
    another's tables nor disturbs anyone else using that database."""
    import psycopg

    schema = f"coscribe_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema


def _drop_pg_schema(admin_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def stored_updates(server: RunningServer) -> int | None:
    """Updates coscribe appended to its update log during the run (None for the servers
    without storage): the notes' last seq, since a compaction may already have folded rows
    into a snapshot (COSCRIBE_COMPACT_AFTER_UPDATES)."""
    if server.name != "coscribe":
        return None
    query = "SELECT coalesce(sum(last_seq), 0) FROM notes"
    if server.sqlite_path is not None:
        try:
            with contextlib.closing(sqlite3.connect(server.sqlite_path)) as conn:
                return int(conn.execute(query).fetchone()[0])
        except sqlite3.Error as exc:
            log(f"  could not count stored updates: {exc}")
            return None
    if server.pg_admin_url and server.pg_schema:
        import psycopg

        url = _with_search_path(server.pg_admin_url, server.pg_schema)
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                row = conn.execute(query).fetchone()
                return int(row[0]) if row else None
        except psycopg.Error as exc:
            log(f"  could not count stored updates: {exc}")
    return None


def start_server(
    name: str, workdir: Path, *, cpu: int | None = None, database_url: str | None = None
) -> RunningServer:
    """Start `name` on a free port (on CPU `cpu` when given). coscribe uses SQLite in `workdir`,
    or with `database_url` a new schema in that PostgreSQL database, migrated first."""
    port = free_port()
    log_path = workdir / f"{name}.log"
    env = dict(os.environ)
    sqlite_path = pg_schema = None
    if name == "coscribe":
        for variable in ("DATABASE_URL", "COSCRIBE_DB_DRIVER", "REDIS_URL"):
            env.pop(variable, None)
        if database_url:
            pg_schema = _new_pg_schema(database_url)
            env["DATABASE_URL"] = _with_search_path(database_url, pg_schema)
            env["PYTHONPATH"] = str(ROOT)
            with (workdir / "migrate.log").open("wb") as out:
                migrated = subprocess.run(
                    [*COSCRIBE, "db", "migrate"],
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=120,
                )
            if migrated.returncode != 0:
                _drop_pg_schema(database_url, pg_schema)
                raise RuntimeError(f"coscribe db migrate failed: {(workdir / 'migrate.log')}")
        else:
            sqlite_path = workdir / "coscribe.sqlite"
            env["COSCRIBE_SQLITE_PATH"] = str(sqlite_path)
        env.update(BENCH_SETTINGS)
        cmd = [*COSCRIBE, "serve", "--host", "127.0.0.1", "--port", str(port)]
        env["PYTHONPATH"] = str(ROOT)
        prefix, ready = f"ws://127.0.0.1:{port}/ws/", answers_health(f"http://127.0.0.1:{port}")
    elif name == "pycrdt":
        cmd = [str(peer_python()), str(PEER_SERVER), "--host", "127.0.0.1", "--port", str(port)]
        prefix, ready = f"ws://127.0.0.1:{port}/", accepts_tcp(port)
    elif name == "reference":
        cmd = ["node", str(REFERENCE_SERVER_SCRIPT), "--host", "127.0.0.1", "--port", str(port)]
        prefix, ready = f"ws://127.0.0.1:{port}/", accepts_tcp(port)
    elif name == "relay":
        cmd = [sys.executable, str(RELAY_SERVER), "--host", "127.0.0.1", "--port", str(port)]
        prefix, ready = f"ws://127.0.0.1:{port}/", accepts_tcp(port)
    else:
        raise ValueError(name)
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            pinned(cmd, cpu),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so it can be stopped whole
        )
    server = RunningServer(
        name, proc, prefix, log_path, sqlite_path, database_url if pg_schema else None, pg_schema
    )
    try:
        wait_ready(proc, ready, START_TIMEOUT_S)
    except (RuntimeError, TimeoutError):
        stop_server(server)
        raise
    return server


def stop_server(server: RunningServer) -> int | None:
    """Stop the server (SIGTERM: coscribe flushes on the way out); return the number of
    updates coscribe stored, then drop its PostgreSQL schema if it had one."""
    stop(server.proc)
    stored = stored_updates(server)
    if server.pg_admin_url and server.pg_schema:
        import psycopg

        try:
            _drop_pg_schema(server.pg_admin_url, server.pg_schema)
        except psycopg.Error as exc:  # say so and go on: the run's figures stand
            log(f"  could not drop schema {server.pg_schema}: {exc}")
    return stored


def stop(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process group we started, SIGKILL after `timeout` (and its leftovers)."""
    stop_process(proc, timeout, group=True)
