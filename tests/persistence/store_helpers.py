"""Helpers shared by the store contract tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from persistence.engine import Database
from persistence.stores import workspaces

T = TypeVar("T")

# A fixed clock for everything that takes ``now``: no test sleeps.
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TIMEOUT = 10  # seconds a concurrency test may wait for a thread before failing


def new_workspace(db: Database, slug: str = "w1") -> str:
    with db.begin() as conn:
        return workspaces.create(conn, slug)["id"]


def in_thread(fn: Callable[[], T]) -> Future[T]:
    """Run ``fn`` in a new thread; ``.result(TIMEOUT)`` fails the test instead of hanging."""
    executor = ThreadPoolExecutor(max_workers=1)
    future = executor.submit(fn)
    executor.shutdown(wait=False)
    return future


def needs_threads(db: Database) -> None:
    """The memory database has one pooled connection: two open transactions cannot exist."""
    if db.driver == "memory":
        pytest.skip("memory has a single connection; covered by the sequential tests")


def backend_pid(conn: sa.Connection) -> int | None:
    """This connection's PostgreSQL backend pid (None elsewhere), for wait_until_blocked."""
    if conn.dialect.name != "postgresql":
        return None
    return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()


def wait_until_blocked(db: Database, pids: list[int | None], waiting: Future[Any]) -> None:
    """Return once the thread that appended its backend pid to ``pids`` waits for a lock.

    Only PostgreSQL can be observed. On SQLite a second writer waits in BEGIN IMMEDIATE for the
    busy timeout, and the tests' outcomes do not depend on the interleaving there.
    """
    if db.driver != "postgres":
        return
    deadline = time.monotonic() + TIMEOUT
    query = sa.text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
    pause = threading.Event()
    while time.monotonic() < deadline:
        if waiting.done():
            return  # it did not block after all; the caller's assertions will say why
        if pids:
            with db.connect() as conn:
                if conn.execute(query, {"pid": pids[0]}).scalar() == "Lock":
                    return
        pause.wait(0.01)
    raise AssertionError("the other transaction never waited for a lock")
