"""Background tasks (the job queue): /api/background-tasks.

Jobs can be queued, inspected, changed while still queued, cancelled and deleted here;
claiming and completing them is for the server's own workers and has no endpoint.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from persistence import limits
from persistence.stores import background_tasks

from .api import Api, Call
from .crud import Body, Id, Int32, Integer, Query, Resource, Stored, Timestamp, unchanged

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class BackgroundTask(Stored):
    workspace_id: str | None
    kind: str
    payload: dict[str, Any]
    status: JobStatus
    priority: int = Field(description="Higher runs first.")
    attempts: int
    max_attempts: int
    run_after: datetime = Field(description="Not claimed before this time.")
    locked_by: str | None = Field(description="The worker running it.")
    locked_until: datetime | None = Field(description="When that worker's lease ends.")
    result: dict[str, Any] | None
    error: str | None = Field(description="The last failure, or why it was cancelled.")
    schedule_id: str | None = Field(description="The schedule that queued it.")
    finished_at: datetime | None


class BackgroundTaskCreate(Body):
    kind: str = Field(
        min_length=1, max_length=limits.KIND_CHARS, description="What to run, e.g. compact."
    )
    payload: dict[str, Any] = Field(default_factory=dict)
    workspace_id: Id | None = None
    run_after: Timestamp | None = Field(None, description="Default: now.")
    priority: Int32 = 0
    max_attempts: Integer = Field(5, ge=1, le=1000)
    id: Id | None = None


class BackgroundTaskUpdate(Body):
    payload: dict[str, Any] = unchanged()
    run_after: Timestamp = unchanged()
    priority: Int32 = unchanged()
    max_attempts: Integer = unchanged(ge=1, le=1000)


class BackgroundTaskQuery(Query):
    workspace_id: Id | None = None
    status: JobStatus | None = None
    kind: str | None = Field(None, max_length=limits.KIND_CHARS)
    schedule_id: Id | None = None


class BackgroundTaskCancel(Body):
    reason: str | None = Field(
        None, max_length=limits.ERROR_CHARS, description="Kept as its error."
    )


def register(api: Api) -> None:
    resource = Resource.over(
        background_tasks,
        list=background_tasks.list_jobs,
        name="background_task",
        plural="background-tasks",
        out=BackgroundTask,
        create_body=BackgroundTaskCreate,
        update_body=BackgroundTaskUpdate,
        query=BackgroundTaskQuery,
        list_errors=(404,),
        write_access="admin",
    )
    resource.register(api)

    @api.route(
        "POST",
        f"{resource.item_path}/cancel",
        tag=resource.plural,
        body=BackgroundTaskCancel,
        response=BackgroundTask,
        errors=(409,),
        description="Send `{}` or a reason. 409 if it already finished.",
        access="admin",
    )
    async def cancel_background_task(call: Call) -> Any:
        """Cancel a queued or running background task"""
        job_id, reason = resource.item_id(call), call.body.reason
        row = await call.write(lambda conn: background_tasks.cancel(conn, job_id, reason=reason))
        return BackgroundTask.model_validate(row)
