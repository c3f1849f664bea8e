"""A real `coscribe` process on a free port, for tests that need the whole server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.processes import answers_health, free_port, stop_process, wait_ready

COSCRIBE = [sys.executable, "-m", "server.cli"]
ROOT = Path(__file__).resolve().parent.parent


def clean_env(extra: Mapping[str, str], cwd: Path) -> dict[str, str]:
    """The current environment minus any database/COSCRIBE_ settings, plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("COSCRIBE_") and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env["PYTHONPATH"] = str(ROOT)
    # Most tests are about something else than access control: they run with auth off, as
    # a loopback server may. The access tests and the web editor's turn it on.
    env["COSCRIBE_AUTH"] = "false"
    # Rooms unload as soon as their last client leaves, which many tests wait for; the
    # tests of the unload grace set one.
    env["COSCRIBE_ROOM_UNLOAD_GRACE_S"] = "0"
    env.update(extra)
    return env


def run_cli(args: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 60):
    """Run the coscribe command to completion; returns the CompletedProcess."""
    return subprocess.run(
        [*COSCRIBE, *args],
        env=clean_env(env, cwd),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class LiveServer:
    """`coscribe serve` in a child process; use as a context manager."""

    def __init__(
        self, env: Mapping[str, str], cwd: Path, *args: str, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.env = clean_env(env, cwd)
        self.cwd = cwd
        self.args = args
        self.process: subprocess.Popen[str] | None = None
        self.log_path = cwd / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> LiveServer:
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [*COSCRIBE, "serve", "--host", "127.0.0.1", "--port", str(self.port), *self.args],
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_ready(self.process, answers_health(self.url), timeout)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise type(exc)(f"server {exc}:\n{self.log()}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, timeout: float = 15) -> int | None:
        if self.process is None:
            return None
        return stop_process(self.process, timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush — what a crash or the OOM killer does."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(15)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
