"""A PostgreSQL server of the test's own, to stop, restart and break under a running coscribe.

It is built with the machine's initdb and pg_ctl (COSCRIBE_TEST_PG_BIN, default
/usr/lib/postgresql/15/bin) in a fresh directory, listens on 127.0.0.1 on a free port with
trust authentication, and every helper acts on it alone: pg_ctl is given its data directory,
and the last resort at teardown is a signal to the pid in its postmaster.pid. The shared
server on 5432 is never touched.

PostgreSQL refuses to run as root: as root, every tool runs as the `postgres` OS user
(runuser), and the directory is handed to that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.processes import free_port

PG_BIN = Path(os.environ.get("COSCRIBE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"
TOOLS = ("initdb", "pg_ctl", "postgres")
# fsync off: the machine does not crash during a test, and an immediate stop loses nothing
# the server wrote to the OS. synchronous_commit stays on: with it off, an immediate stop
# loses commits the server has already acknowledged, which is not the outage under test.
CONFIG = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockets}'
fsync = off
max_connections = 50
"""


def missing_tools(bindir: Path = PG_BIN) -> str | None:
    """Why a private server cannot be built here, or None when it can."""
    absent = [tool for tool in TOOLS if not (bindir / tool).is_file()]
    if absent:
        return f"{', '.join(absent)} not found in {bindir}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            return f"running as root and there is no {OS_USER!r} OS user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and `runuser` is missing (needed to run PostgreSQL as postgres)"
    return None


class PostgresError(RuntimeError):
    """A pg_ctl or initdb call failed; the message holds its output and the server log's tail."""


class PrivatePostgres:
    """One private server; `create()` builds and starts it, `destroy()` always ends it."""

    def __init__(self, bindir: Path = PG_BIN) -> None:
        self.bindir = bindir
        self.port = free_port()
        # Outside pytest's tmp_path: that one is private to its owner, and the postgres OS
        # user must reach this directory.
        self.root = Path(tempfile.mkdtemp(prefix="coscribe-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs (from its own postmaster.pid)."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def create(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            user = pwd.getpwnam(OS_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(CONFIG.format(port=self.port, sockets=self.root))
        self.start()
        return self

    def start(self) -> None:
        self._pg_ctl("start", "-l", str(self.log_path))

    def stop(self, mode: str = "immediate") -> None:
        """Stop it; `immediate` is a crash as clients see it (no goodbye to any connection)."""
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        """What an operator's restart does: sessions are ended, then it is back."""
        self._pg_ctl("restart", "-m", mode, "-l", str(self.log_path))

    def running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0

    def admin(self) -> psycopg.Connection:
        """A superuser session that writes even while the server is made read-only."""
        return psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=5,
            options="-c default_transaction_read_only=off",
        )

    def set_read_only(self, read_only: bool) -> None:
        """Break it without stopping it: every new transaction is read-only (sessions that are
        open now included, from their next transaction on), so every write fails."""
        with self.admin() as conn:
            if read_only:
                conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            else:
                conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
            conn.execute("SELECT pg_reload_conf()")

    def destroy(self) -> None:
        """Stop it whatever state it is in, and remove its files."""
        if self.data.exists() and self.running():
            with contextlib.suppress(PostgresError, subprocess.TimeoutExpired):
                self.stop()
        pid = self.pid
        if pid is not None:
            # pg_ctl failed: end our postmaster, by its pid, and nothing else.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _pg_ctl(self, action: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._run(
            "pg_ctl", action, "-D", str(self.data), "-w", "-t", "60", *args, check=check
        )

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", OS_USER, "--", *command]
        # pg_ctl start leaves the server running with our stdout unless it is redirected.
        result = subprocess.run(
            command,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise PostgresError(
                f"{tool} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}"
                f"{result.stderr}\nserver log:\n{self.log()[-3000:]}"
            )
        return result
