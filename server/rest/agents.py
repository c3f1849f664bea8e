"""Agents: /api/agents."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

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
    name: str = Field(min_length=1, max_length=200, description="Unique in the workspace.")
    role: str = Field(min_length=1, max_length=64, description="coder, reviewer, planner, ...")
    model: str | None = Field(None, max_length=200)
    instructions: str = Field("", max_length=1_000_000)
    config: dict[str, Any] = Field(default_factory=dict)
    status: AgentStatus = "idle"
    id: Id | None = None


class AgentUpdate(Body):
    name: str = unchanged(min_length=1, max_length=200)
    role: str = unchanged(min_length=1, max_length=64)
    model: str | None = Field(None, max_length=200)
    instructions: str = unchanged(max_length=1_000_000)
    config: dict[str, Any] = unchanged()
    status: AgentStatus = unchanged()
    last_seen_at: Timestamp | None = None


class AgentQuery(Query):
    workspace_id: Id
    status: AgentStatus | None = None
    role: str | None = Field(None, max_length=64)


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
