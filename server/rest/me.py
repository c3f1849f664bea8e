"""/api/me: what the calling token may do, so a client can adapt (a read-only editor)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .api import Api, Call


class Me(BaseModel):
    role: str  # admin | editor | viewer
    workspace_id: str | None  # an editor's or viewer's workspace; an admin's home, if any
    token_id: str | None  # None when auth is off
    can_write: bool


def register(api: Api) -> None:
    @api.route("GET", "/api/me", tag="access", response=Me)
    async def get_me(call: Call) -> Any:
        """The calling token's role and workspace"""
        principal = call.principal
        return Me(
            role=principal.role,
            workspace_id=principal.workspace_id,
            token_id=principal.token_id,
            can_write=principal.can_write,
        )
