"""Background work that must not die silently: a tracked set of tasks, and a periodic loop.

Every background task of the server (the persister's flusher, the room ticker, the session
watch, the worker, the storage probe) is started through one Background and stopped by it, in
reverse order, exactly once. A periodic step that raises is logged and the loop goes on: the
first failure with its traceback, then nothing more until the error changes or the step works
again (one line per change of state, however long a database outage lasts).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .health import STORAGE_ERRORS


class Background:
    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopped = False

    def spawn(self, name: str, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        task.add_done_callback(self._ended)
        self._tasks.append(task)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        if task.exception() is not None:
            # A loop body catches its own errors: reaching here is a bug, but never a silent one.
            self.log.error("background task %r died", task.get_name(), exc_info=task.exception())
        elif not self._stopped:
            self.log.error("background task %r ended on its own", task.get_name())

    async def stop(self) -> None:
        """Cancel every task, newest first, and wait for each. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for task in reversed(self._tasks):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._tasks.clear()


class Failures:
    """Logs a repeating failure once per change of state, and the recovery."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.count = 0
        self._last: str | None = None

    def failed(self, exc: BaseException) -> None:
        self.count += 1
        described = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        if described != self._last:
            self._last = described
            # A database that is down says enough in one line; anything else is a bug,
            # and its traceback is what finds it.
            expected = isinstance(exc, STORAGE_ERRORS)
            self.log.error(
                "%s failed (%s); going on", self.what, described, exc_info=None if expected else exc
            )

    def succeeded(self) -> None:
        if self._last is not None:
            self.log.warning("%s works again after %d failures", self.what, self.count)
            self._last = None
            self.count = 0


async def every(
    interval_s: float,
    step: Callable[[], Awaitable[object]],
    *,
    log: logging.Logger,
    what: str,
) -> None:
    """await step() every interval_s seconds, forever (until cancelled)."""
    failures = Failures(log, what)
    while True:
        await asyncio.sleep(interval_s)
        try:
            await step()
        except Exception as exc:  # noqa: BLE001 - the loop outlives any error; failed() logs it
            failures.failed(exc)
        else:
            failures.succeeded()
