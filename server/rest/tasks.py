"""Tasks and their dependencies: /api/tasks, /api/tasks/{id}/dependencies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field

from persistence import limits
from persistence.stores import tasks

from .api import Api, Call
from .crud import Body, Id, Int32, Query, Resource, Stored, unchanged

TaskStatus = Literal["todo", "in_progress", "blocked", "done", "cancelled"]


class Task(Stored):
    workspace_id: str
    title: str
    description: str
    status: TaskStatus
    priority: int
    assignee_id: str | None
    codebase_id: str | None
    note_id: str | None
    completed_at: datetime | None = Field(description="When it was last marked done.")


class TaskCreate(Body):
    workspace_id: Id
    title: str = Field(min_length=1, max_length=limits.TITLE_CHARS)
    description: str = Field("", max_length=limits.TEXT_CHARS)
    status: TaskStatus = "todo"
    priority: Int32 = 0
    assignee_id: Id | None = Field(None, description="An agent of the same workspace.")
    codebase_id: Id | None = Field(None, description="A codebase of the same workspace.")
    note_id: Id | None = Field(None, description="A note of the same workspace.")
    id: Id | None = None


class TaskUpdate(Body):
    title: str = unchanged(min_length=1, max_length=limits.TITLE_CHARS)
    description: str = unchanged(max_length=limits.TEXT_CHARS)
    status: TaskStatus = unchanged()
    priority: Int32 = unchanged()
    assignee_id: Id | None = None
    codebase_id: Id | None = None
    note_id: Id | None = None


class TaskQuery(Query):
    workspace_id: Id
    status: TaskStatus | None = None
    assignee_id: Id | None = None
    codebase_id: Id | None = None


class TaskDependencies(BaseModel):
    depends_on: list[Task] = Field(description="The tasks this one waits for.")
    dependents: list[Task] = Field(description="The tasks waiting for this one.")


class TaskDependency(BaseModel):
    task_id: str
    depends_on_id: str


class TaskDependencyCreate(Body):
    depends_on_id: Id = Field(description="A task of the same workspace to finish first.")


def _dependencies(conn: sa.Connection, task_id: str) -> TaskDependencies:
    return TaskDependencies.model_validate(
        {
            "depends_on": tasks.list_dependencies(conn, task_id),
            "dependents": tasks.list_dependents(conn, task_id),
        }
    )


def register(api: Api) -> None:
    resource = Resource.over(
        tasks,
        list=tasks.list_tasks,
        name="task",
        plural="tasks",
        out=Task,
        create_body=TaskCreate,
        update_body=TaskUpdate,
        query=TaskQuery,
        list_errors=(404,),
    )
    resource.register(api)
    dependencies = f"{resource.item_path}/dependencies"

    @api.route("GET", dependencies, tag="tasks", response=TaskDependencies, errors=(422,))
    async def list_task_dependencies(call: Call) -> Any:
        """The tasks a task depends on and the tasks that depend on it"""
        task_id = resource.item_id(call)
        return await call.read(lambda conn: _dependencies(conn, task_id))

    @api.route(
        "POST",
        dependencies,
        tag="tasks",
        body=TaskDependencyCreate,
        response=TaskDependency,
        status=201,
        errors=(409,),
        description=(
            "Adding an existing dependency again changes nothing. 409 if it would close a cycle"
            " (the detail names it), 422 for the task itself or a task of another workspace."
        ),
    )
    async def add_task_dependency(call: Call) -> Any:
        """Make a task depend on another"""
        task_id, depends_on_id = resource.item_id(call), call.body.depends_on_id
        return await call.write(lambda conn: tasks.add_dependency(conn, task_id, depends_on_id))

    @api.route(
        "DELETE", f"{dependencies}/{{depends_on_id}}", tag="tasks", status=204, errors=(422,)
    )
    async def remove_task_dependency(call: Call) -> None:
        """Remove a dependency"""
        task_id, depends_on_id = resource.item_id(call), call.path["depends_on_id"]
        await call.write(lambda conn: tasks.remove_dependency(conn, task_id, depends_on_id))
