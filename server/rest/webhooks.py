"""Webhooks over REST: an admin registers a URL and a secret per workspace; anyone who reads
the workspace sees its webhooks (never their secrets) and each delivery's status, attempts
and last error."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from persistence import limits, webhooks
from persistence.errors import InvalidError
from persistence.ids import PATTERN as ID

from ..webhooks import points_at_self
from .api import Api, Call
from .crud import Body, Query, page_model
from .problems import Problem

TAG = "webhooks"
ITEM = "/api/webhooks/{webhook_id}"
RESOLVE_TIMEOUT_S = 2.0


class Webhook(BaseModel):
    id: str
    workspace_id: str
    url: str
    enabled: bool
    max_attempts: int
    created_at: datetime
    updated_at: datetime


class WebhookCreate(Body):
    workspace_id: str = Field(pattern=ID, description="Whose notes' events it receives.")
    url: str = Field(max_length=limits.PATH_CHARS, description="An http:// or https:// URL.")
    secret: str = Field(
        min_length=webhooks.MIN_SECRET_CHARS,
        max_length=limits.WEBHOOK_SECRET_CHARS,
        description="Signs every delivery: X-Coscribe-Signature: sha256=HMAC-SHA256(secret, "
        "body) in hex. Never shown again.",
    )
    max_attempts: int = Field(
        webhooks.DEFAULT_MAX_ATTEMPTS,
        ge=1,
        le=webhooks.MAX_ATTEMPTS,
        description="Attempts per delivery before it is marked failed.",
    )


class WebhookUpdate(Body):
    enabled: bool


class WebhookQuery(Query):
    workspace_id: str | None = Field(None, pattern=ID)


class Delivery(BaseModel):
    id: str
    webhook_id: str
    event_id: int
    status: Literal["pending", "retrying", "succeeded", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


class DeliveryQuery(Query):
    status: Literal["pending", "retrying", "succeeded", "failed"] | None = None


def _own_addresses(call: Call) -> list[tuple[str, int]]:
    """Where this server is reached: the socket the request came in on, the configured
    host and port, and the Host the client used."""
    own = []
    server = call.request.scope.get("server")
    if server and server[1] is not None:
        own.append((str(server[0]), int(server[1])))
        settings = call.services.settings
        own.append((settings.host, int(server[1]) if settings.port == 0 else settings.port))
    host = call.request.url.hostname
    port = call.request.url.port or (443 if call.request.url.scheme == "https" else 80)
    if host:
        own.append((host, port))
    return own


def register(api: Api) -> None:
    @api.route(
        "POST",
        "/api/webhooks",
        tag=TAG,
        body=WebhookCreate,
        response=Webhook,
        status=201,
        errors=(404,),
        access="admin",
        description="422 for a URL that is not http(s) or that points at this server.",
    )
    async def create_webhook(call: Call) -> Any:
        """Register a webhook for a workspace's events"""
        body: WebhookCreate = call.body
        try:
            url = webhooks.check_url(body.url)
        except InvalidError as exc:
            raise Problem(422, str(exc)) from None
        if await points_at_self(url, _own_addresses(call), RESOLVE_TIMEOUT_S):
            raise Problem(422, "url: points at this server itself; deliveries would loop")
        return await call.write(
            lambda conn: webhooks.create(
                conn, body.workspace_id, url, body.secret, max_attempts=body.max_attempts
            )
        )

    @api.route(
        "GET",
        "/api/webhooks",
        tag=TAG,
        query=WebhookQuery,
        response=page_model(Webhook),
    )
    async def list_webhooks(call: Call) -> Any:
        """List webhooks"""
        q = call.query
        page = await call.read(
            lambda conn: webhooks.list_webhooks(
                conn, workspace_id=q.workspace_id, limit=q.limit, cursor=q.cursor
            )
        )
        return {"items": page.items, "next_cursor": page.next_cursor}

    @api.route("GET", ITEM, tag=TAG, response=Webhook)
    async def get_webhook(call: Call) -> Any:
        """Get a webhook"""
        return await call.read(lambda conn: webhooks.get(conn, call.path["webhook_id"]))

    @api.route("PATCH", ITEM, tag=TAG, body=WebhookUpdate, response=Webhook, access="admin")
    async def update_webhook(call: Call) -> Any:
        """Enable or disable a webhook"""
        enabled = call.body.enabled
        return await call.write(
            lambda conn: webhooks.set_enabled(conn, call.path["webhook_id"], enabled)
        )

    @api.route("DELETE", ITEM, tag=TAG, status=204, access="admin")
    async def delete_webhook(call: Call) -> None:
        """Delete a webhook and its deliveries"""
        await call.write(lambda conn: webhooks.delete(conn, call.path["webhook_id"]))

    @api.route(
        "GET",
        f"{ITEM}/deliveries",
        tag=TAG,
        query=DeliveryQuery,
        response=page_model(Delivery),
    )
    async def list_deliveries(call: Call) -> Any:
        """A webhook's deliveries, newest first, with their status and last error"""
        q = call.query
        page = await call.read(
            lambda conn: webhooks.list_deliveries(
                conn, call.path["webhook_id"], status=q.status, limit=q.limit, cursor=q.cursor
            )
        )
        return {"items": page.items, "next_cursor": page.next_cursor}
