"""The background worker inside the server: runs queued jobs and fires due schedules.

The queue is durable (background_tasks): a job is claimed with a lease that the worker renews
while the job runs. If this process dies, the lease expires and any worker claims the job
again. A failed job is retried with backoff until its attempts are used up, its error kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from persistence.engine import Database
from persistence.stores import background_tasks, schedules

from .jobs import HANDLERS, Handler, JobContext, PermanentError, RetryLater
from .loops import Failures
from .settings import Settings
from .threads import LowPriorityThread

log = logging.getLogger("coscribe.worker")


class Worker:
    def __init__(
        self, db: Database, settings: Settings, handlers: dict[str, Handler] | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.handlers = HANDLERS if handlers is None else handlers
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.context = JobContext(db, settings)
        self.completed = 0
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (job kind, outcome): /metrics
        self.failed = 0
        self._wake = asyncio.Event()
        self._failures = Failures(log, "the worker loop")
        # Jobs can wait, sockets can't: they run below the loop's priority (threads.py).
        self._thread = LowPriorityThread("jobs")

    def close(self) -> None:
        """After run() was cancelled: the jobs' thread ends after the job it runs."""
        self._thread.close()

    def wake(self) -> None:
        """Something was queued: look now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Fire schedules and run jobs until cancelled; never dies of an error."""
        poll = self.settings.worker_poll_s
        while True:
            # Cleared before looking, so a wake() that comes while jobs run is not lost.
            self._wake.clear()
            try:
                await asyncio.to_thread(self._fire_schedules)
                while (job := await asyncio.to_thread(self._claim)) is not None:
                    await self._execute(job)
            except Exception as exc:  # noqa: BLE001 - logged by failed(); next poll retries
                # The database may be down: say so once, and try again at the next poll.
                self._failures.failed(exc)
            else:
                self._failures.succeeded()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel
            # that arrives as the wait ends, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._wake.wait()

    def _fire_schedules(self) -> None:
        with self.db.begin() as conn:
            for job in schedules.fire_due(conn, datetime.now(UTC)):
                log.info(
                    "schedule %s queued job %s (%s)", job["schedule_id"], job["id"], job["kind"]
                )

    def _claim(self) -> dict[str, Any] | None:
        with self.db.begin() as conn:
            return background_tasks.claim(
                conn, self.id, kinds=list(self.handlers), lease_seconds=self.settings.job_lease_s
            )

    async def _execute(self, job: dict[str, Any]) -> None:
        handler = self.handlers[job["kind"]]
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(job["id"]))
        try:
            result = await self._thread.run(handler, self.context, job["payload"])
        except PermanentError as exc:
            log.warning("job %s (%s) failed for good: %s", job["id"], job["kind"], exc)
            await asyncio.to_thread(self._fail, job, exc, False)
        except RetryLater as exc:
            log.warning(
                "job %s (%s) failed (attempt %d): %s", job["id"], job["kind"], job["attempts"], exc
            )
            await asyncio.to_thread(self._fail, job, exc, True)
        except Exception as exc:
            log.exception(
                "job %s (%s) failed (attempt %d)", job["id"], job["kind"], job["attempts"]
            )
            await asyncio.to_thread(self._fail, job, exc, True)
        else:
            await asyncio.to_thread(self._complete, job, result)
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    async def _heartbeat(self, job_id: str) -> None:
        """Renew the job's lease every third of it. A failed renewal is logged and tried
        again at the next beat: two more chances before the lease runs out and another
        worker may take the job (at-least-once, as documented)."""
        lease = self.settings.job_lease_s
        failures = Failures(log, f"renewing the lease of job {job_id}")

        def renew() -> None:
            with self.db.begin() as conn:
                background_tasks.heartbeat(conn, job_id, self.id, lease_seconds=lease)

        while True:
            await asyncio.sleep(lease / 3)
            try:
                await asyncio.to_thread(renew)
            except Exception as exc:  # noqa: BLE001 - logged by failed(); the next beat retries
                failures.failed(exc)
            else:
                failures.succeeded()

    def _complete(self, job: dict[str, Any], result: dict[str, Any]) -> None:
        with self.db.begin() as conn:
            background_tasks.complete(conn, job["id"], self.id, result)
        self.completed += 1
        self.outcomes[job["kind"], "succeeded"] += 1
        log.info("job %s (%s) done: %s", job["id"], job["kind"], result)

    def _fail(self, job: dict[str, Any], exc: BaseException, retry: bool) -> None:
        with self.db.begin() as conn:
            background_tasks.fail(conn, job["id"], self.id, exc, retry=retry)
        self.failed += 1
        self.outcomes[job["kind"], "retried" if retry else "failed"] += 1
