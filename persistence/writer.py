"""Writer: one long-lived thread per database that runs write transactions, one at a time.

The persister stores a batch every few milliseconds. Handing each batch to a thread pool
(asyncio.to_thread) and checking a connection out of the pool for it (a ping on PostgreSQL)
costs more CPU than the few rows it writes. The writer keeps one thread and, while there is
work, one connection: a job is a function of a connection, run in a transaction of its own,
and its result (or its exception) is set on an asyncio future through the loop's
call_soon_threadsafe. After ``idle_release_s`` without work the connection goes back to the
pool, so an idle server holds none.

Jobs run in the order they were submitted. An exception in a job rolls its transaction back,
reaches its caller, and returns the connection to the pool (a broken one is discarded there),
so the next job starts on a fresh one; the thread goes on. A job whose kept connection turns
out dead before its commit (the database restarted while the writer kept it) runs once more on
a fresh connection instead: nothing of it committed, and failing it would report an outage
that is already over. ``stop`` runs every job submitted before it, then ends the thread.

This module knows no asyncio beyond handing results back; it is usable from any loop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from .engine import Database

log = logging.getLogger("coscribe.writer")

T = TypeVar("T")

IDLE_RELEASE_S = 1.0


class WriterStopped(RuntimeError):
    """The writer was stopped: it takes no more jobs."""


class _KeptConnectionDied(Exception):
    def __init__(self, conn: sa.Connection) -> None:
        super().__init__("the kept connection was dropped by the database")
        self.conn = conn


@dataclass
class WriterStats:
    jobs: int = 0
    errors: int = 0  # jobs that raised
    checkouts: int = 0  # connections taken from the pool
    releases: int = 0  # connections given back
    retries: int = 0  # jobs run again because the kept connection had died


@dataclass
class _Job:
    work: Callable[[sa.Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class Writer:
    def __init__(
        self, db: Database, *, idle_release_s: float = IDLE_RELEASE_S, name: str = "writer"
    ) -> None:
        self.db = db
        # The in-memory database has one pooled connection for everyone: never keep it.
        self.idle_release_s = 0.0 if db.driver == "memory" else idle_release_s
        self.name = name
        self.stats = WriterStats()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # start/stop against submit
        self._stopped = False
        self._holding = False

    @property
    def holding(self) -> bool:
        """A connection is checked out (work was done less than idle_release_s ago)."""
        return self._holding

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (again, after a stop). Idempotent while running."""
        with self._lock:
            self._stopped = False
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        # Under self._lock.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name=f"coscribe-{self.name}", daemon=True
            )
            self._thread.start()

    def submit(self, work: Callable[[sa.Connection], T]) -> asyncio.Future[T]:
        """Queue work(conn) to run in a transaction of its own; a future of its result.
        Called on the event loop, which the future belongs to."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._stopped:
                raise WriterStopped(f"the {self.name} is stopped")
            self._ensure_thread()
            self._jobs.put(_Job(work, loop, future))
        return future

    def stop(self, timeout: float | None = None) -> bool:
        """Run every job submitted so far, then end the thread and give back its connection.
        Blocks for at most ``timeout``; False if the thread is still busy then."""
        with self._lock:
            self._stopped = True
            thread = self._thread
            if thread is None:
                return True
            self._jobs.put(None)
        thread.join(timeout)
        if thread.is_alive():
            log.error("the %s did not finish its jobs in %ss", self.name, timeout)
            return False
        with self._lock:
            if self._thread is thread:
                self._thread = None
        return True

    # --- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        conn: sa.Connection | None = None
        try:
            while True:
                try:
                    if conn is None:
                        job = self._jobs.get()
                    else:
                        job = self._jobs.get(timeout=self.idle_release_s)
                except queue.Empty:
                    self._release(conn)  # idle: give it back
                    conn = None
                    continue
                if job is None:
                    return
                conn = self._do(job, conn)
                if self.idle_release_s <= 0 and self._jobs.empty():
                    self._release(conn)
                    conn = None
        finally:
            self._release(conn)

    def _do(self, job: _Job, conn: sa.Connection | None) -> sa.Connection | None:
        self.stats.jobs += 1
        try:
            try:
                conn, result = self._transaction(job, conn)
            except _KeptConnectionDied as died:
                # The connection was kept from an earlier job and the database dropped it
                # meanwhile (a restart): the pool's ping only checks connections it hands out.
                # The job's transaction did not commit: run it once more, on a fresh one.
                self.stats.retries += 1
                self._release(died.conn)
                conn, result = self._transaction(job, None)
        except Exception as exc:  # noqa: BLE001 - handed to the caller, who logs or handles it
            self.stats.errors += 1
            self._settle(job, None, exc)
            return None
        self._settle(job, result, None)
        return conn

    def _transaction(self, job: _Job, conn: sa.Connection | None) -> tuple[sa.Connection, Any]:
        """Run the job in a transaction on ``conn`` (kept from an earlier job) or a fresh
        connection. Raises _KeptConnectionDied when a kept one was found dead before the
        commit; on any other error the connection goes back to the pool (which discards one
        the driver found broken), so the next job starts on a fresh one."""
        kept = conn is not None
        committing = False
        try:
            if conn is None:
                conn = self.db.connect()
                self.stats.checkouts += 1
                self._holding = True
            with conn.begin():
                result = job.work(conn)
                # A job may catch the driver's error and go on (append writes note by note
                # then): the connection says whether it died under the job.
                if kept and conn.invalidated:
                    raise _KeptConnectionDied(conn)
                committing = True  # __exit__ commits: past here, an error may follow a commit
        except _KeptConnectionDied:
            raise
        except Exception as exc:
            if kept and not committing and conn.invalidated:
                raise _KeptConnectionDied(conn) from exc
            self._release(conn)
            raise
        return conn, result

    def _settle(self, job: _Job, result: Any, error: BaseException | None) -> None:
        def settle() -> None:
            if job.future.done():  # its caller was cancelled: the work is done all the same
                return
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)

        try:
            job.loop.call_soon_threadsafe(settle)
        except RuntimeError:
            # The loop is closed: nobody waits any more. The work itself is done (or not).
            log.warning("the %s finished a job after its event loop closed", self.name)

    def _release(self, conn: sa.Connection | None) -> None:
        if conn is None:
            return
        self._holding = False
        self.stats.releases += 1
        try:
            conn.close()
        except sa.exc.SQLAlchemyError as exc:
            # The connection is unusable; the pool has let go of it already.
            log.debug("the %s could not close its connection: %s", self.name, exc)
