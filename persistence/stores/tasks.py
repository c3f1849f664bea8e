"""Tasks of a workspace and the dependencies between them (a graph without cycles).

``add_dependency(conn, a, b)`` records that task a depends on task b (b must be done first).
Dependency edits lock the workspace row (PostgreSQL), so two transactions can never each add
half of a cycle that neither saw; on SQLite the single writer gives the same guarantee.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from .. import limits, schema
from ..checks import check_id, choice, integer, reference, text
from ..errors import ConflictError, InvalidError, NotFoundError
from ..paging import DEFAULT_LIMIT, Page, Row
from .entity import WORKSPACE, Entity, Ref, lock_row

STATUSES = ("todo", "in_progress", "blocked", "done", "cancelled")
OPEN_STATUSES = ("todo", "in_progress", "blocked")


def _track_completion(_conn: sa.Connection, old: Row | None, row: Row, now: datetime) -> None:
    if row["status"] != "done":
        row["completed_at"] = None
    elif old is None or old["status"] != "done":
        row["completed_at"] = now


_tasks = Entity(
    schema.tasks,
    "task",
    {
        "workspace_id": reference(nullable=False),
        "title": text(limits.TITLE_CHARS, blank=False),
        "description": text(),
        "status": choice(*STATUSES),
        "priority": integer(),
        "assignee_id": reference(),
        "codebase_id": reference(),
        "note_id": reference(),
    },
    refs={
        "workspace_id": WORKSPACE,
        "assignee_id": Ref(schema.agents, "agent"),
        "codebase_id": Ref(schema.codebases, "codebase"),
        "note_id": Ref(schema.notes, "note", condition=schema.notes.c.deleted_at.is_(None)),
    },
    prepare=_track_completion,
)

get = _tasks.get
update = _tasks.update
delete = _tasks.delete


def create(
    conn: sa.Connection,
    workspace_id: str,
    title: str,
    *,
    description: str = "",
    status: str = "todo",
    priority: int = 0,
    assignee_id: str | None = None,
    codebase_id: str | None = None,
    note_id: str | None = None,
    id: str | None = None,
) -> Row:
    """Create a task; the agent, codebase and note it names must be in the same workspace."""
    values = {
        "workspace_id": workspace_id,
        "title": title,
        "description": description,
        "status": status,
        "priority": priority,
        "assignee_id": assignee_id,
        "codebase_id": codebase_id,
        "note_id": note_id,
    }
    return _tasks.create(conn, values, entity_id=id)


def list_tasks(
    conn: sa.Connection,
    workspace_id: str,
    *,
    status: str | list[str] | tuple[str, ...] | None = None,
    assignee_id: str | None = None,
    codebase_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page:
    """The workspace's tasks, newest first; ``status=OPEN_STATUSES`` lists unfinished ones."""
    return _tasks.page(
        conn,
        workspace_id=workspace_id,
        status=status,
        assignee_id=assignee_id,
        codebase_id=codebase_id,
        limit=limit,
        cursor=cursor,
    )


# --- dependencies ------------------------------------------------------------------------------

_deps = schema.task_dependencies


def _edge(task_id: str, depends_on_id: str) -> Row:
    return {"task_id": task_id, "depends_on_id": depends_on_id}


def _edge_clause(task_id: str, depends_on_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(_deps.c.task_id == task_id, _deps.c.depends_on_id == depends_on_id)


def _path(conn: sa.Connection, start: str, goal: str) -> list[str] | None:
    """The tasks from ``start`` to ``goal`` following depends-on edges, or None."""
    # Everything start depends on, transitively: one recursive query on both databases.
    # UNION (not UNION ALL) visits each task once even where paths converge.
    reach = (
        sa.select(_deps.c.depends_on_id.label("id"))
        .where(_deps.c.task_id == start)
        .cte("reach", recursive=True)
    )
    reach = reach.union(sa.select(_deps.c.depends_on_id).join(reach, _deps.c.task_id == reach.c.id))
    reachable = set(conn.execute(sa.select(reach.c.id)).scalars())
    if goal not in reachable:
        return None
    # Rare (a refused write): load the edges among those tasks to name one path.
    edges: dict[str, list[str]] = {}
    query = sa.select(_deps.c.task_id, _deps.c.depends_on_id).where(
        _deps.c.task_id.in_(reachable | {start})
    )
    for source, target in conn.execute(query):
        edges.setdefault(source, []).append(target)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(edges.get(node, ())):
            if target in came_from or target == start:
                continue
            came_from[target] = node
            if target == goal:
                path = [goal]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return path[::-1]
            queue.append(target)
    raise AssertionError("reachable goal without a path")  # pragma: no cover


def add_dependency(conn: sa.Connection, task_id: str, depends_on_id: str) -> Row:
    """Record that ``task_id`` depends on ``depends_on_id``; adding it again is a no-op.

    Refuses a self-dependency and tasks of different workspaces (InvalidError), unknown tasks
    (NotFoundError) and an edge that would close a cycle (ConflictError naming the cycle).
    """
    check_id("task id", task_id)
    check_id("task id", depends_on_id)
    if task_id == depends_on_id:
        raise InvalidError(f"task {task_id!r} cannot depend on itself")
    task, prerequisite = _tasks.get(conn, task_id), _tasks.get(conn, depends_on_id)
    if task["workspace_id"] != prerequisite["workspace_id"]:
        raise InvalidError(
            f"task {task_id!r} cannot depend on task {depends_on_id!r} of another workspace"
        )
    lock_row(conn, schema.workspaces, task["workspace_id"])
    if conn.execute(sa.select(_deps).where(_edge_clause(task_id, depends_on_id))).first():
        return _edge(task_id, depends_on_id)
    path = _path(conn, depends_on_id, task_id)
    if path is not None:
        cycle = " -> ".join([task_id, *path])
        raise ConflictError(f"dependency would create a cycle: {cycle}")
    try:
        with conn.begin_nested():
            conn.execute(_deps.insert().values(_edge(task_id, depends_on_id)))
    except sa_exc.IntegrityError:
        # Only a task deleted meanwhile can get here: the workspace lock orders the rest.
        _tasks.get(conn, task_id)
        _tasks.get(conn, depends_on_id)
        raise ConflictError("dependency clashed with a concurrent change; retry") from None
    return _edge(task_id, depends_on_id)


def remove_dependency(conn: sa.Connection, task_id: str, depends_on_id: str) -> None:
    """Remove the edge, or NotFoundError if there is none."""
    check_id("task id", task_id)
    check_id("task id", depends_on_id)
    result = conn.execute(_deps.delete().where(_edge_clause(task_id, depends_on_id)))
    if result.rowcount == 0:
        raise NotFoundError(f"task {task_id!r} does not depend on task {depends_on_id!r}")


def _neighbours(conn: sa.Connection, task_id: str, *, dependents: bool) -> list[Row]:
    _tasks.get(conn, task_id)
    mine, other = (
        (_deps.c.depends_on_id, _deps.c.task_id)
        if dependents
        else (_deps.c.task_id, _deps.c.depends_on_id)
    )
    tasks = schema.tasks
    query = (
        sa.select(tasks)
        .join(_deps, other == tasks.c.id)
        .where(mine == task_id)
        .order_by(tasks.c.created_at, tasks.c.id)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def list_dependencies(conn: sa.Connection, task_id: str) -> list[Row]:
    """The tasks ``task_id`` depends on directly (oldest first)."""
    return _neighbours(conn, task_id, dependents=False)


def list_dependents(conn: sa.Connection, task_id: str) -> list[Row]:
    """The tasks that depend directly on ``task_id`` (oldest first)."""
    return _neighbours(conn, task_id, dependents=True)
