"""Threads for work that can wait (indexing, background jobs), below the event loop in the
kernel's scheduler.

The event loop answers sockets; the indexer and the jobs can wait. Under load they share one
core. At equal priority a busy worker thread keeps its time slice while the loop, woken by a
socket, waits behind it: in the 250-rooms benchmark the indexer's thread (FTS5 tokenising whole
note bodies, with the GIL released) raised the fan-out p99 from 5-6 ms to 8-10 ms. With a
higher nice value the loop runs first whenever it has work, and these threads still get every
cycle it leaves. Only deferrable work goes here: the persister's writer stays at the loop's
priority (what it has not stored is what a crash loses), and so do the short reads a request
waits for (asyncio.to_thread).

Linux keeps a nice value per thread (setpriority(2) on the thread id); elsewhere this changes
nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

log = logging.getLogger("coscribe.threads")

T = TypeVar("T")

# Added to the process's nice value (at most 19, the lowest priority).
BACKGROUND_NICE = 5
MAX_NICE = 19


def lower_priority(increment: int = BACKGROUND_NICE) -> None:
    """Lower the calling thread's CPU priority by ``increment`` nice levels (Linux only).
    Never raises: a thread that keeps its priority still does its work."""
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    try:
        nice = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(MAX_NICE, nice + increment))
    except OSError as exc:  # a sandbox may forbid it
        log.info("background thread keeps its priority: %s", exc)


class LowPriorityThread:
    """One thread, started on first use at a lower priority, that runs calls in order."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"coscribe-{name}", initializer=lower_priority
        )

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` on the thread, in the caller's context (as asyncio.to_thread)."""
        call = functools.partial(contextvars.copy_context().run, function, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def close(self) -> None:
        """No new calls; the thread ends after the one it runs (not waited for)."""
        self._executor.shutdown(wait=False)
