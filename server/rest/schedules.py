"""Schedules: /api/schedules (background tasks queued on a cron cadence)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from persistence import limits
from persistence.stores import schedules

from .api import Api
from .crud import Body, Flag, Id, Query, Resource, Stored, unchanged

CRON = (
    "Five fields (minute hour day-of-month month day-of-week) with *, lists, ranges, steps"
    " and month/day names, read in `timezone`."
)


class Schedule(Stored):
    workspace_id: str | None
    name: str
    cron: str
    timezone: str
    job_kind: str
    job_payload: dict[str, Any]
    enabled: bool
    next_run_at: datetime | None = Field(description="None while disabled.")
    last_run_at: datetime | None


class ScheduleCreate(Body):
    name: str = Field(min_length=1, max_length=limits.NAME_CHARS, description="Unique.")
    cron: str = Field(min_length=1, max_length=limits.CRON_CHARS, description=CRON)
    job_kind: str = Field(
        min_length=1, max_length=limits.KIND_CHARS, description="Kind of the queued jobs."
    )
    job_payload: dict[str, Any] = Field(default_factory=dict)
    timezone: str = Field(
        "UTC", min_length=1, max_length=limits.KIND_CHARS, description="An IANA time zone."
    )
    enabled: Flag = True
    workspace_id: Id | None = None
    id: Id | None = None


class ScheduleUpdate(Body):
    name: str = unchanged(min_length=1, max_length=limits.NAME_CHARS)
    cron: str = unchanged(min_length=1, max_length=limits.CRON_CHARS, description=CRON)
    job_kind: str = unchanged(min_length=1, max_length=limits.KIND_CHARS)
    job_payload: dict[str, Any] = unchanged()
    timezone: str = unchanged(min_length=1, max_length=limits.KIND_CHARS)
    enabled: Flag = unchanged()


class ScheduleQuery(Query):
    workspace_id: Id | None = None
    enabled: bool | None = None


def register(api: Api) -> None:
    Resource.over(
        schedules,
        list=schedules.list_schedules,
        name="schedule",
        plural="schedules",
        out=Schedule,
        create_body=ScheduleCreate,
        update_body=ScheduleUpdate,
        query=ScheduleQuery,
        list_errors=(404,),
        write_access="admin",
    ).register(api)
