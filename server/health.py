"""StorageHealth: is the database taking writes? The one place that decides it and says so.

Everything that talks to the database reports here: the persister after each write, REST after
a failed call, a probe that runs while the server is idle. The state changes on evidence and
each change is logged once (not once per failed attempt), so an outage of any length costs
two log lines. Readiness (GET /health/ready) is this state.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import SQLAlchemyError

from persistence.errors import StoreError

log = logging.getLogger("coscribe.storage")

# What storage raises when it is down, full or locked: a state, logged in one line, never a bug.
STORAGE_ERRORS = (SQLAlchemyError, StoreError, OSError, TimeoutError)

OK = "ok"
FAILING = "failing"


class StorageUnavailable(Exception):
    """Storage cannot take the write now; the client should retry after ``retry_after_s``."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StorageHealth:
    def __init__(self) -> None:
        self.state = OK
        self.since = time.time()
        self.error: str | None = None
        self.failed_writes = 0  # since start
        self._failures = 0  # in the current outage

    @property
    def ok(self) -> bool:
        return self.state == OK

    def failed(self, error: BaseException | str, *, write: bool = True) -> None:
        """A database call failed for a reason of the database's (not of the input's)."""
        if write:
            self.failed_writes += 1
        self._failures += 1
        self.error = _describe(error)
        if self.state == OK:
            self.state, self.since = FAILING, time.time()
            log.error("storage failing: %s", self.error)

    def succeeded(self) -> None:
        """A database call (a write, or a probe while nothing waits to be written) worked."""
        if self.state == FAILING:
            log.warning(
                "storage recovered after %.1fs (%d failed calls)",
                time.time() - self.since,
                self._failures,
            )
            self.state, self.since, self.error, self._failures = OK, time.time(), None, 0

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "since": self.since, "error": self.error}


def _describe(error: BaseException | str) -> str:
    """One line: drivers put the SQL and a URL to their docs on the following lines."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first[:300]
