"""Access tokens over REST, for admins: issue one for a workspace (a share link), list the
tokens made, revoke one. The secret is in the answer to the create call only; the database
keeps a hash of it. A revoked token's open sockets are closed by the session watch."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from persistence import tokens
from persistence.ids import PATTERN as ID
from persistence.stores import workspaces

from .api import Api, Call
from .crud import Body, Timestamp

TAG = "access"


class Token(BaseModel):
    id: str = Field(description="What `coscribe token list` shows; not the secret.")
    workspace_id: str | None
    name: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenIssued(Token):
    token: str = Field(description="The token itself: shown once, never stored.")


class TokenCreate(Body):
    role: Literal["admin", "editor", "viewer"]
    workspace_id: str | None = Field(
        None, pattern=ID, description="Required for editor and viewer tokens."
    )
    name: str = Field("", max_length=200)
    expires_at: Timestamp | None = None


class TokenQuery(BaseModel):
    workspace_id: str | None = Field(None, pattern=ID, description="Only this workspace's.")
    include_inactive: bool = Field(False, description="Also revoked and expired tokens.")


class TokenList(BaseModel):
    items: list[Token]


def register(api: Api) -> None:
    @api.route("GET", "/api/tokens", tag=TAG, query=TokenQuery, response=TokenList, access="admin")
    async def list_tokens(call: Call) -> Any:
        """List access tokens, oldest first (admin only)"""
        q: TokenQuery = call.query

        def listed(conn: Any) -> dict:
            rows = tokens.list_tokens(conn, include_inactive=q.include_inactive)
            if q.workspace_id is not None:
                rows = [row for row in rows if row["workspace_id"] == q.workspace_id]
            return {"items": rows}

        return await call.read(listed)

    @api.route(
        "POST",
        "/api/tokens",
        tag=TAG,
        body=TokenCreate,
        response=TokenIssued,
        status=201,
        errors=(404,),
        access="admin",
    )
    async def create_token(call: Call) -> Any:
        """Issue an access token, e.g. an editor's or viewer's for a share link (admin only)"""
        body: TokenCreate = call.body

        def issue(conn: Any) -> dict:
            if body.workspace_id == workspaces.DEFAULT_ID:
                workspaces.ensure_default(conn)
            issued = tokens.issue(
                conn,
                body.role,
                workspace=body.workspace_id,
                name=body.name,
                expires_at=body.expires_at,
            )
            return {**issued.row, "token": issued.token}

        return await call.write(issue)

    @api.route(
        "DELETE", "/api/tokens/{token_id}", tag=TAG, response=Token, errors=(404,), access="admin"
    )
    async def revoke_token(call: Call) -> Any:
        """Revoke an access token by id; its open sockets close within seconds (admin only)"""
        token_id = call.path["token_id"]
        return await call.write(lambda conn: tokens.revoke(conn, token_id))
