"""Background tasks: a durable job queue.

A job goes queued -> running (claimed by a worker under a lease) -> succeeded | failed |
cancelled. A failed attempt goes back to queued with an exponential backoff until
``max_attempts``. A worker that dies stops renewing its lease; once ``locked_until`` has passed
another worker may claim the job again, which counts as an attempt.

Claiming uses ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL: any number of workers claim
at once and never get the same job. On SQLite every transaction takes the write lock at BEGIN
(see engine.py), so claims are serialized and the same query is just as safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from .. import limits, schema
from ..checks import as_now, choice, integer, json_object, number, reference, text, timestamp
from ..errors import ConflictError
from ..paging import DEFAULT_LIMIT, Page, Row
from .entity import WORKSPACE, Entity, Ref

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
BACKOFF_BASE_SECONDS = 10
BACKOFF_MAX_SECONDS = 3600
MAX_LEASE_SECONDS = 86_400
MAX_DELAY_SECONDS = 30 * 86_400
MAX_ERROR_CHARS = limits.ERROR_CHARS

_jobs = schema.background_tasks
_worker = text(limits.WORKER_CHARS, blank=False)


def _only_queued(_conn: sa.Connection, old: Row | None, _row: Row, _now: datetime) -> None:
    if old is not None and old["status"] != "queued":
        raise ConflictError(
            f"background task {old['id']!r} is {old['status']}: only a queued one can be changed"
        )


_queue = Entity(
    _jobs,
    "background task",
    {
        "workspace_id": reference(),
        "kind": text(limits.KIND_CHARS, blank=False),
        "payload": json_object(),
        "priority": integer(),
        "max_attempts": integer(1, 1000),
        "run_after": timestamp(),
        "schedule_id": reference(),
        "status": choice(*STATUSES),
    },
    fixed=("workspace_id", "kind", "schedule_id", "status"),
    refs={
        "workspace_id": WORKSPACE,
        "schedule_id": Ref(schema.schedules, "schedule", same_workspace=False),
    },
    prepare=_only_queued,
)

get = _queue.get
delete = _queue.delete
# payload, priority, run_after and max_attempts of a job that is still queued.
update = _queue.update


def enqueue(
    conn: sa.Connection,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    workspace_id: str | None = None,
    run_after: datetime | None = None,
    priority: int = 0,
    max_attempts: int = 5,
    schedule_id: str | None = None,
    id: str | None = None,
    now: datetime | None = None,
) -> Row:
    """Queue a job to run at ``run_after`` (default now); higher ``priority`` runs first."""
    now = as_now(now)
    values = {
        "workspace_id": workspace_id,
        "kind": kind,
        "payload": payload,
        "priority": priority,
        "max_attempts": max_attempts,
        "run_after": now if run_after is None else run_after,
        "schedule_id": schedule_id,
        "status": "queued",
    }
    return _queue.create(conn, values, entity_id=id, now=now, extra={"attempts": 0})


create = enqueue


def list_jobs(
    conn: sa.Connection,
    *,
    workspace_id: str | None = None,
    status: str | list[str] | tuple[str, ...] | None = None,
    kind: str | None = None,
    schedule_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page:
    """Jobs, newest first, optionally by workspace, status, kind and schedule."""
    filters = {"status": status, "kind": kind, "schedule_id": schedule_id}
    return _queue.page(conn, workspace_id=workspace_id, limit=limit, cursor=cursor, **filters)


def _set(conn: sa.Connection, job: Row, now: datetime, **values: Any) -> Row:
    values["updated_at"] = now
    conn.execute(_jobs.update().where(_jobs.c.id == job["id"]).values(values))
    return {**job, **values}


def _lease(lease_seconds: float) -> timedelta:
    return timedelta(seconds=number("lease_seconds", lease_seconds, 1, MAX_LEASE_SECONDS))


def claim(
    conn: sa.Connection,
    worker_id: str,
    *,
    kinds: Iterable[str] | None = None,
    lease_seconds: float = 60,
    now: datetime | None = None,
) -> Row | None:
    """Take the next runnable job for ``worker_id``, or None if there is none.

    Runnable: queued with ``run_after <= now``, or running with an expired lease. Highest
    priority first, then oldest ``run_after``. The job becomes running, locked by the worker
    until ``now + lease_seconds``, and its attempts go up by one. Commit promptly: on
    PostgreSQL the row stays locked (skipped by other claimers) until the transaction ends.
    """
    worker_id = _worker("worker id", worker_id)
    lease = _lease(lease_seconds)
    now = as_now(now)
    conditions = [
        sa.or_(
            sa.and_(_jobs.c.status == "queued", _jobs.c.run_after <= now),
            sa.and_(_jobs.c.status == "running", _jobs.c.locked_until < now),
        )
    ]
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        check = _queue.fields["kind"]
        conditions.append(_jobs.c.kind.in_([check("background task kind", k) for k in kinds]))
    query = (
        sa.select(_jobs)
        .where(*conditions)
        .order_by(_jobs.c.priority.desc(), _jobs.c.run_after, _jobs.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    while (found := conn.execute(query).mappings().first()) is not None:
        job = dict(found)
        error = job["error"]
        if job["status"] == "running":
            error = f"lease of worker {job['locked_by']!r} expired at {job['locked_until']}"
        if job["attempts"] >= job["max_attempts"]:
            # Its last worker died holding it (or max_attempts was lowered): give up on it and
            # look again, so a job that kills its workers cannot be retried forever.
            failed = f"gave up after {job['attempts']} attempts: {error}"
            _set(conn, job, now, status="failed", error=failed, finished_at=now, locked_until=None)
            continue
        return _set(
            conn,
            job,
            now,
            status="running",
            attempts=job["attempts"] + 1,
            locked_by=worker_id,
            locked_until=now + lease,
            error=error,
        )
    return None


def _owned(conn: sa.Connection, job_id: str, worker_id: str) -> Row:
    worker_id = _worker("worker id", worker_id)
    job = _queue.get(conn, job_id, for_update=True)
    if job["status"] != "running" or job["locked_by"] != worker_id:
        state = job["status"]
        if state == "running":
            state += f", locked by {job['locked_by']!r}"
        raise ConflictError(
            f"background task {job_id!r} is not locked by worker {worker_id!r} (it is {state})"
        )
    return job


def heartbeat(
    conn: sa.Connection,
    job_id: str,
    worker_id: str,
    *,
    lease_seconds: float = 60,
    now: datetime | None = None,
) -> Row:
    """Extend the worker's lease to ``now + lease_seconds``; ConflictError if it lost the job."""
    lease, now = _lease(lease_seconds), as_now(now)
    job = _owned(conn, job_id, worker_id)
    return _set(conn, job, now, locked_until=now + lease)


def complete(
    conn: sa.Connection,
    job_id: str,
    worker_id: str,
    result: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> Row:
    """Mark the job succeeded; ConflictError unless ``worker_id`` holds it."""
    result = json_object(nullable=True)("background task result", result)
    now = as_now(now)
    job = _owned(conn, job_id, worker_id)
    return _set(
        conn, job, now, status="succeeded", result=result, finished_at=now, locked_until=None
    )


def _error_text(error: str | BaseException) -> str:
    if isinstance(error, BaseException):
        error = f"{type(error).__name__}: {error}"
    # A failure report is never refused: make it storable instead.
    error = str(error).replace("\x00", "\\0").encode("utf-8", "replace").decode("utf-8")
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"


def fail(
    conn: sa.Connection,
    job_id: str,
    worker_id: str,
    error: str | BaseException,
    *,
    retry_delay_seconds: float | None = None,
    retry: bool = True,
    now: datetime | None = None,
) -> Row:
    """Record a failed attempt: queue the job again after a delay, or fail it for good.

    It fails for good when ``retry`` is false or the attempts are used up. The delay defaults
    to 10 s doubled for each attempt already made, at most an hour.
    """
    error = _error_text(error)
    if retry_delay_seconds is not None:
        number("retry_delay_seconds", retry_delay_seconds, 0, MAX_DELAY_SECONDS)
    now = as_now(now)
    job = _owned(conn, job_id, worker_id)
    if not retry or job["attempts"] >= job["max_attempts"]:
        return _set(
            conn, job, now, status="failed", error=error, finished_at=now, locked_until=None
        )
    if retry_delay_seconds is None:
        exponent = min(job["attempts"] - 1, 20)
        retry_delay_seconds = min(BACKOFF_BASE_SECONDS * 2**exponent, BACKOFF_MAX_SECONDS)
    run_after = now + timedelta(seconds=retry_delay_seconds)
    return _set(
        conn,
        job,
        now,
        status="queued",
        run_after=run_after,
        error=error,
        locked_by=None,
        locked_until=None,
    )


def cancel(
    conn: sa.Connection, job_id: str, *, reason: str | None = None, now: datetime | None = None
) -> Row:
    """Cancel a queued or running job (its worker's complete/fail then gets ConflictError)."""
    reason = text(MAX_ERROR_CHARS, nullable=True)("cancel reason", reason)
    now = as_now(now)
    job = _queue.get(conn, job_id, for_update=True)
    if job["status"] in FINISHED:
        raise ConflictError(f"background task {job_id!r} is already {job['status']}")
    error = job["error"] if reason is None else reason
    return _set(conn, job, now, status="cancelled", error=error, finished_at=now, locked_until=None)


def delete_finished(conn: sa.Connection, older_than: datetime) -> int:
    """Delete succeeded, failed and cancelled jobs finished before ``older_than``; the count."""
    older_than = timestamp()("older_than", older_than)
    result = conn.execute(
        _jobs.delete().where(_jobs.c.status.in_(FINISHED), _jobs.c.finished_at < older_than)
    )
    return result.rowcount
