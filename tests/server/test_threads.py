"""Deferrable work runs below the event loop's priority: LowPriorityThread on its own, and
the indexer's thread inside a live server (read from /proc)."""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from server.threads import BACKGROUND_NICE, MAX_NICE, LowPriorityThread, lower_priority
from tests.live_server import LiveServer
from tests.yclient import eventually

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="a nice value per thread is Linux's"
)

VARIABLE: contextvars.ContextVar[str] = contextvars.ContextVar("VARIABLE", default="unset")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _expected(base: int) -> int:
    return min(MAX_NICE, base + BACKGROUND_NICE)


def test_lower_priority_changes_the_calling_thread_only():
    base = _nice()
    seen: list[int] = []

    def lowered() -> None:
        lower_priority()
        seen.append(_nice())

    thread = threading.Thread(target=lowered)
    thread.start()
    thread.join()
    assert seen == [_expected(base)]
    assert _nice() == base


async def test_calls_run_in_order_on_one_lowered_thread_in_the_callers_context():
    base = _nice()
    thread = LowPriorityThread("test")
    VARIABLE.set("caller's")
    order: list[int] = []

    def step(n: int) -> tuple[int, int, str]:
        time.sleep(0.01 * (3 - n))  # the first call is the slowest: order is still kept
        order.append(n)
        return threading.get_native_id(), _nice(), VARIABLE.get()

    try:
        results = await asyncio.gather(*(thread.run(step, n) for n in range(3)))
        assert order == [0, 1, 2]
        assert len({tid for tid, _, _ in results}) == 1
        assert results[0][0] != threading.get_native_id()
        assert {nice for _, nice, _ in results} == {_expected(base)}
        assert {value for _, _, value in results} == {"caller's"}
        assert _nice() == base

        def fail() -> None:
            raise ValueError("from the thread")

        with pytest.raises(ValueError, match="from the thread"):
            await thread.run(fail)
    finally:
        thread.close()
    with pytest.raises(RuntimeError):
        await thread.run(step, 0)


def _nice_values(pid: int) -> dict[int, int]:
    """Thread id -> nice value of every thread of ``pid``."""
    values = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        # Fields after the command name (which may hold spaces): state is field 3, nice 19.
        fields = stat.rsplit(")", 1)[1].split()
        values[int(task.name)] = int(fields[19 - 3])
    return values


async def test_a_live_servers_indexer_runs_below_the_loop(tmp_path):
    env = {
        "COSCRIBE_SQLITE_PATH": str(tmp_path / "notes.sqlite"),
        "COSCRIBE_SEARCH_INDEX_DELAY_MS": "50",
        "COSCRIBE_SEARCH_INDEX_MAX_DELAY_MS": "100",
    }
    with LiveServer(env, tmp_path) as server:
        pid = server.process.pid
        base = _nice_values(pid)[pid]
        created = httpx.post(f"{server.url}/api/notes", json={"id": "n", "text": "findable words"})
        assert created.status_code == 201, created.text
        await eventually(
            lambda: httpx.get(f"{server.url}/api/search", params={"q": "findable"}).json()["items"],
            what="the indexer to index the note",
        )
        nice = _nice_values(pid)
        assert nice[pid] == base  # the event loop's thread keeps its priority
        lowered = [tid for tid, value in nice.items() if value == _expected(base)]
        assert lowered, f"no thread below the loop's priority: {nice}"
        # Most threads (the persister's writer, asyncio's default pool) keep the loop's.
        assert len(lowered) < len(nice) - 1
