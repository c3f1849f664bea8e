"""Agents: the workers of a workspace (coder, reviewer, planner, ...) and their status.

Deleting an agent leaves its tasks unassigned and its conversations without an agent.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .. import limits, schema
from ..checks import choice, json_object, reference, text, timestamp
from ..paging import DEFAULT_LIMIT, Page, Row
from .entity import WORKSPACE, Entity

STATUSES = ("idle", "busy", "offline", "disabled")

_agents = Entity(
    schema.agents,
    "agent",
    {
        "workspace_id": reference(nullable=False),
        "name": text(limits.NAME_CHARS, blank=False),
        "role": text(limits.KIND_CHARS, blank=False),
        "model": text(limits.NAME_CHARS, nullable=True),
        "instructions": text(),
        "config": json_object(),
        "status": choice(*STATUSES),
        "last_seen_at": timestamp(nullable=True),
    },
    refs={"workspace_id": WORKSPACE},
    unique=[("workspace_id", "name")],
)

get = _agents.get
update = _agents.update
delete = _agents.delete


def create(
    conn: sa.Connection,
    workspace_id: str,
    name: str,
    role: str,
    *,
    model: str | None = None,
    instructions: str = "",
    config: dict[str, Any] | None = None,
    status: str = "idle",
    id: str | None = None,
) -> Row:
    """Create an agent; its name is unique in the workspace."""
    values = {
        "workspace_id": workspace_id,
        "name": name,
        "role": role,
        "model": model,
        "instructions": instructions,
        "config": config,
        "status": status,
        "last_seen_at": None,
    }
    return _agents.create(conn, values, entity_id=id)


def list_agents(
    conn: sa.Connection,
    workspace_id: str,
    *,
    status: str | list[str] | None = None,
    role: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page:
    """The workspace's agents, newest first, optionally by status (one or several) and role."""
    return _agents.page(
        conn, workspace_id=workspace_id, status=status, role=role, limit=limit, cursor=cursor
    )
