"""Schedules: background tasks created on a cron cadence.

``cron`` is standard five-field syntax (minute hour day-of-month month day-of-week, with
``*``, lists, ranges, steps and month/day names) read in the schedule's ``timezone``; seconds
fields, ``@daily`` style macros and extensions such as ``L``, ``W``, ``#``, ``?`` and ``H``
are refused. ``next_run_at`` is kept by the store: computed on create, on a change of cron,
timezone or enabled, and advanced by mark_ran; a disabled schedule has none.

A server that was down fires each overdue schedule once, not once per missed run.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from croniter import CroniterError, croniter

from .. import limits, schema
from ..checks import boolean, integer, json_object, reference, text, timestamp
from ..errors import InvalidError
from ..paging import DEFAULT_LIMIT, Page, Row
from . import background_tasks
from .entity import WORKSPACE, Entity

_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_NAMES = {
    3: {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"},
    4: {"sun", "mon", "tue", "wed", "thu", "fri", "sat"},
}
_CRON_FIELD = re.compile(r"[0-9A-Za-z*,/-]+")
_WORD = re.compile(r"[A-Za-z]+")
_cron_text = text(limits.CRON_CHARS, blank=False)
_timezone_text = text(limits.KIND_CHARS, blank=False)


def _cron(what: str, value: Any) -> str:
    fields = _cron_text(what, value).split()
    if len(fields) != 5:
        raise InvalidError(
            f"invalid {what}: expected 5 fields ({' '.join(_FIELDS)}), got {len(fields)}"
        )
    for position, field in enumerate(fields):
        words = _WORD.findall(field)
        if not _CRON_FIELD.fullmatch(field) or any(
            word.lower() not in _NAMES.get(position, ()) for word in words
        ):
            raise InvalidError(f"invalid {what}: bad {_FIELDS[position]} field {field!r}")
    expression = " ".join(fields)
    try:
        croniter(expression, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterError as exc:  # out of range values, or a date that never comes (Feb 30)
        raise InvalidError(f"invalid {what}: {expression!r}: {exc}") from None
    return expression


def check_cron(value: Any) -> str:
    """A standard five-field cron expression, or InvalidError saying what is wrong."""
    return _cron("cron expression", value)


def _timezone(what: str, value: Any) -> str:
    name = _timezone_text(what, value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidError(f"invalid {what}: unknown time zone {name!r}") from None
    return name


def next_run(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``cron`` matches in ``timezone``, in UTC."""
    local = after.astimezone(ZoneInfo(timezone))
    return croniter(cron, local).get_next(datetime).astimezone(UTC)


def _keep_next_run(_conn: sa.Connection, old: Row | None, row: Row, now: datetime) -> None:
    if not row["enabled"]:
        row["next_run_at"] = None
    elif old is None or any(old[name] != row[name] for name in ("cron", "timezone", "enabled")):
        row["next_run_at"] = next_run(row["cron"], row["timezone"], now)


_schedules = Entity(
    schema.schedules,
    "schedule",
    {
        "workspace_id": reference(),
        "name": text(limits.NAME_CHARS, blank=False),
        "cron": _cron,
        "timezone": _timezone,
        "job_kind": text(limits.KIND_CHARS, blank=False),
        "job_payload": json_object(),
        "enabled": boolean(),
    },
    refs={"workspace_id": WORKSPACE},
    unique=[("name",)],
    prepare=_keep_next_run,
)

get = _schedules.get
# name, cron, timezone, job_kind, job_payload, enabled; pass now= to compute next_run_at from it.
update = _schedules.update
delete = _schedules.delete


def find_by_name(conn: sa.Connection, name: str) -> Row | None:
    name = _schedules.fields["name"]("schedule name", name)
    row = conn.execute(sa.select(schema.schedules).where(schema.schedules.c.name == name))
    found = row.mappings().first()
    return None if found is None else dict(found)


def create(
    conn: sa.Connection,
    name: str,
    cron: str,
    job_kind: str,
    *,
    job_payload: dict[str, Any] | None = None,
    timezone: str = "UTC",
    enabled: bool = True,
    workspace_id: str | None = None,
    id: str | None = None,
    now: datetime | None = None,
) -> Row:
    """Create a schedule (its name is unique); ``next_run_at`` is the first match after now."""
    values = {
        "workspace_id": workspace_id,
        "name": name,
        "cron": cron,
        "timezone": timezone,
        "job_kind": job_kind,
        "job_payload": job_payload,
        "enabled": enabled,
    }
    return _schedules.create(conn, values, entity_id=id, now=now)


def enable(conn: sa.Connection, schedule_id: str, *, now: datetime | None = None) -> Row:
    return _schedules.update(conn, schedule_id, enabled=True, now=now)


def disable(conn: sa.Connection, schedule_id: str, *, now: datetime | None = None) -> Row:
    return _schedules.update(conn, schedule_id, enabled=False, now=now)


def list_schedules(
    conn: sa.Connection,
    *,
    workspace_id: str | None = None,
    enabled: bool | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page:
    """Schedules, newest first, optionally of one workspace and by enabled."""
    return _schedules.page(
        conn, workspace_id=workspace_id, enabled=enabled, limit=limit, cursor=cursor
    )


def _due_query(now: datetime, limit: int) -> sa.Select[Any]:
    table = schema.schedules
    return (
        sa.select(table)
        .where(table.c.enabled.is_(True), table.c.next_run_at <= now)
        .order_by(table.c.next_run_at, table.c.id)
        .limit(limit)
    )


def due(conn: sa.Connection, now: datetime, *, limit: int = 100) -> list[Row]:
    """Enabled schedules whose next_run_at <= now, most overdue first."""
    now = timestamp()("now", now)
    limit = integer(1, 10_000)("limit", limit)
    return [dict(row) for row in conn.execute(_due_query(now, limit)).mappings()]


def _advance(conn: sa.Connection, schedule: Row, ran_at: datetime) -> Row:
    # From the later of the run and the planned time: a run reported a little early must not
    # plan the same time again, and a late one skips what it already covered.
    start = max(ran_at, schedule["next_run_at"] or ran_at)
    changes: dict[str, Any] = {"last_run_at": ran_at, "updated_at": ran_at}
    if schedule["enabled"]:
        changes["next_run_at"] = next_run(schedule["cron"], schedule["timezone"], start)
    table = schema.schedules
    conn.execute(table.update().where(table.c.id == schedule["id"]).values(changes))
    return {**schedule, **changes}


def mark_ran(conn: sa.Connection, schedule_id: str, ran_at: datetime) -> Row:
    """Record a run at ``ran_at`` and plan the next one after it."""
    ran_at = timestamp()("ran_at", ran_at)
    return _advance(conn, _schedules.get(conn, schedule_id, for_update=True), ran_at)


def fire_due(conn: sa.Connection, now: datetime, *, limit: int = 100) -> list[Row]:
    """Enqueue one background task per due schedule and advance them; returns the jobs.

    On PostgreSQL the due rows are locked with SKIP LOCKED, so two servers firing at once
    never enqueue the same run twice; SQLite's single writer does the same there.
    """
    now = timestamp()("now", now)
    limit = integer(1, 10_000)("limit", limit)
    jobs = []
    with conn.begin_nested():
        query = _due_query(now, limit).with_for_update(skip_locked=True)
        for found in conn.execute(query).mappings().all():
            schedule = dict(found)
            jobs.append(
                background_tasks.enqueue(
                    conn,
                    schedule["job_kind"],
                    schedule["job_payload"],
                    workspace_id=schedule["workspace_id"],
                    run_after=schedule["next_run_at"],
                    schedule_id=schedule["id"],
                    now=now,
                )
            )
            _advance(conn, schedule, now)
    return jobs
