"""Agents: /api/agents."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from persistence import limits
from persistence.stores import agents

from .api import Api
from .crud import Body, Id, Query, Resource, Stored, Timestamp, unchanged

AgentStatus = Literal["idle", "busy", "offline", "disabled"]


class Agent(Stored):
    workspace_id: str
    name: str
    role: str
    model: str | None
    instructions: str
    config: dict[str, Any]
    status: AgentStatus
    last_seen_at: datetime | None


class AgentCreate(Body):
    workspace_id: Id
    name: str = Field(
        min_length=1, max_length=limits.NAME_CHARS, description="Unique in the workspace."
    )
    role: str = Field(
        min_length=1, max_length=limits.KIND_CHARS, description="coder, reviewer, planner, ..."
    )
    model: str | None = Field(None, max_length=limits.NAME_CHARS)
    instructions: str = Field("", max_length=limits.TEXT_CHARS)
    config: dict[str, Any] = Field(default_factory=dict)
    status: AgentStatus = "idle"
    id: Id | None = None


class AgentUpdate(Body):
    name: str = unchanged(min_length=1, max_length=limits.NAME_CHARS)
    role: str = unchanged(min_length=1, max_length=limits.KIND_CHARS)
    model: str | None = Field(None, max_length=limits.NAME_CHARS)
    instructions: str = unchanged(max_length=limits.TEXT_CHARS)
    config: dict[str, Any] = unchanged()
    status: AgentStatus = unchanged()
    last_seen_at: Timestamp | None = None


class AgentQuery(Query):
    workspace_id: Id
    status: AgentStatus | None = None
    role: str | None = Field(None, max_length=limits.KIND_CHARS)


def register(api: Api) -> None:
    Resource.over(
        agents,
        list=agents.list_agents,
        name="agent",
        plural="agents",
        out=Agent,
        create_body=AgentCreate,
        update_body=AgentUpdate,
        query=AgentQuery,
        list_errors=(404,),
    ).register(api)
