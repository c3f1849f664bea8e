"""Where a running server listens, recorded beside its SQLite database.

`coscribe stats` asks the running server for its live rooms. The server may listen on a port
given on its command line (or port 0), which the CLI's own settings cannot know; so once it
listens, a server on SQLite writes its URL and pid to ``<database>.server.json`` and removes
the file when it stops. A file left by a process that is gone is ignored. PostgreSQL servers
may be many and elsewhere: there the CLI uses COSCRIBE_HOST/PORT or --url.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from persistence.config import DatabaseConfig


def record_path(config: DatabaseConfig | None) -> Path | None:
    if config is None or config.driver != "sqlite" or config.sqlite_path is None:
        return None
    return config.sqlite_path.with_name(config.sqlite_path.name + ".server.json")


def local_url(host: str, port: int) -> str:
    """A URL this machine can reach a server listening on host:port with."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def record(config: DatabaseConfig | None, url: str) -> None:
    path = record_path(config)
    if path is None:
        return
    partial = path.with_name(path.name + f".{os.getpid()}")
    try:
        partial.write_text(json.dumps({"url": url, "pid": os.getpid()}))
        partial.replace(path)
    except OSError:
        # A read-only folder costs only this convenience: stats then needs --url.
        partial.unlink(missing_ok=True)


def forget(config: DatabaseConfig | None) -> None:
    """Remove the record if it is this process's (a second server may have replaced it)."""
    path = record_path(config)
    if path is not None and _owner(path) == os.getpid():
        path.unlink(missing_ok=True)


def recorded_url(config: DatabaseConfig | None) -> str | None:
    """The URL a live server on this database recorded, or None."""
    path = record_path(config)
    if path is None:
        return None
    pid = _owner(path)
    if pid is None or not _alive(pid):
        return None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return str(json.loads(path.read_text())["url"])
    return None


def _owner(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return int(json.loads(path.read_text())["pid"])
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True
