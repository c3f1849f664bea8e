"""Workspaces: /api/workspaces."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from persistence import limits
from persistence.stores import workspaces

from .api import Api
from .crud import Body, Query, Resource

SLUG = r"^[a-z0-9][a-z0-9-]{0,63}$"


class Workspace(BaseModel):
    id: str
    slug: str
    name: str
    description: str
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class WorkspaceCreate(Body):
    slug: str = Field(pattern=SLUG, description="Short unique name: a-z, 0-9 and -.")
    name: str | None = Field(None, max_length=limits.NAME_CHARS)
    description: str = Field("", max_length=limits.WORKSPACE_DESCRIPTION_CHARS)
    settings: dict[str, Any] = Field(default_factory=dict)
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,128}$")


class WorkspaceUpdate(Body):
    slug: str | None = Field(None, pattern=SLUG)
    name: str | None = Field(None, max_length=limits.NAME_CHARS)
    description: str | None = Field(None, max_length=limits.WORKSPACE_DESCRIPTION_CHARS)
    settings: dict[str, Any] | None = None


def register(api: Api) -> None:
    Resource(
        name="workspace",
        plural="workspaces",
        out=Workspace,
        create_body=WorkspaceCreate,
        update_body=WorkspaceUpdate,
        query=Query,
        create=workspaces.create,
        get=workspaces.get,
        list=workspaces.list_workspaces,
        update=workspaces.update,
        delete=workspaces.delete,
        write_access="admin",
    ).register(api)
