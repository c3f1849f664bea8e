"""Child processes that serve on a port: pick the port, wait until they serve, stop them.

Used by tests/live_server.py and by the benchmark (bench/), which start servers the same way.
Only the standard library, so that the benchmark needs nothing else to import it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers_health(url: str) -> Callable[[], bool]:
    """A readiness check: GET {url}/health answers 200."""

    def check() -> bool:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=1) as r:
            return r.status == 200
        return False

    return check


def accepts_tcp(port: int) -> Callable[[], bool]:
    """A readiness check for servers without /health: the port accepts a connection."""

    def check() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        return False

    return check


def wait_ready(process: subprocess.Popen[Any], ready: Callable[[], bool], timeout: float) -> None:
    """Poll `ready()` until it holds. RuntimeError if the process exits first, TimeoutError
    when it does not hold within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} during start-up")
        if ready():
            return
        time.sleep(0.05)  # between polls
    raise TimeoutError(f"not ready within {timeout} s")


def stop_process(
    process: subprocess.Popen[Any], timeout: float = 15, *, group: bool = False
) -> int | None:
    """SIGTERM, then SIGKILL if it does not go within `timeout`; returns the exit code.

    `group`: the process was started in its own session (start_new_session=True), and
    whatever is left of its process group (its own children) goes too."""

    def send(signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)

    if process.poll() is None:
        send(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
    if group:
        send(signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)
    return process.returncode
