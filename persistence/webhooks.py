"""Webhooks: URLs an admin registers per workspace, and the delivery of each event to them.

A delivery is a row here (its status, attempts and last error, for people to look at) and a
job in the durable queue (background_tasks, kind ``deliver_webhook``), both written in the
transaction that appends the event: an event is never stored without its deliveries, and a
process that dies leaves the job for another to run. What a delivery does over HTTP lives in
server/webhooks.py.

Every function takes the caller's Connection and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from . import limits
from .checks import as_now, check_id, new_id
from .errors import InvalidError, NotFoundError
from .paging import DEFAULT_LIMIT, Page, Row, keyset_page
from .schema import webhook_deliveries, webhooks, workspaces
from .stores import background_tasks

JOB_KIND = "deliver_webhook"
STATUSES = ("pending", "retrying", "succeeded", "failed")
DEFAULT_MAX_ATTEMPTS = 8
MAX_ATTEMPTS = 20
MIN_SECRET_CHARS = 16
# Webhook rows as the API shows them: never the secret.
PUBLIC = [c for c in webhooks.c if c.name != "secret"]


def check_url(url: Any) -> str:
    """An absolute http(s) URL with a host, within the column's length."""
    if not isinstance(url, str) or not url:
        raise InvalidError("url: expected an http:// or https:// URL")
    if len(url) > limits.PATH_CHARS:
        raise InvalidError(f"url: longer than {limits.PATH_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for a port out of range or not a number
    except ValueError as exc:
        raise InvalidError(f"url: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidError(f"url: the scheme must be http or https, not {parts.scheme!r}")
    if not parts.hostname:
        raise InvalidError("url: no host")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidError("url: contains whitespace or control characters")
    del port
    return url


def check_secret(secret: Any) -> str:
    if not isinstance(secret, str) or not MIN_SECRET_CHARS <= len(secret) <= (
        limits.WEBHOOK_SECRET_CHARS
    ):
        raise InvalidError(
            f"secret: expected {MIN_SECRET_CHARS} to {limits.WEBHOOK_SECRET_CHARS} characters"
        )
    return secret


def create(
    conn: sa.Connection,
    workspace_id: str,
    url: str,
    secret: str,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    now: datetime | None = None,
) -> Row:
    check_id("workspace id", workspace_id)
    url, secret = check_url(url), check_secret(secret)
    if not 1 <= max_attempts <= MAX_ATTEMPTS:
        raise InvalidError(f"max_attempts: expected 1 to {MAX_ATTEMPTS}")
    if (
        conn.execute(sa.select(workspaces.c.id).where(workspaces.c.id == workspace_id)).first()
        is None
    ):
        raise NotFoundError(f"workspace {workspace_id!r} not found")
    now = as_now(now)
    webhook_id = new_id()
    conn.execute(
        sa.insert(webhooks).values(
            id=webhook_id,
            workspace_id=workspace_id,
            url=url,
            secret=secret,
            enabled=True,
            max_attempts=max_attempts,
            created_at=now,
            updated_at=now,
        )
    )
    return get(conn, webhook_id)


def get(conn: sa.Connection, webhook_id: str, *, with_secret: bool = False) -> Row:
    check_id("webhook id", webhook_id)
    columns = list(webhooks.c) if with_secret else PUBLIC
    row = conn.execute(sa.select(*columns).where(webhooks.c.id == webhook_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"webhook {webhook_id!r} not found")
    return dict(row)


def list_webhooks(
    conn: sa.Connection,
    *,
    workspace_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page:
    query = sa.select(*PUBLIC)
    if workspace_id is not None:
        query = query.where(webhooks.c.workspace_id == check_id("workspace id", workspace_id))
    return keyset_page(
        conn, query, ((webhooks.c.created_at, True), (webhooks.c.id, True)), limit, cursor
    )


def set_enabled(
    conn: sa.Connection, webhook_id: str, enabled: bool, *, now: datetime | None = None
) -> Row:
    get(conn, webhook_id)
    conn.execute(
        sa.update(webhooks)
        .where(webhooks.c.id == webhook_id)
        .values(enabled=bool(enabled), updated_at=as_now(now))
    )
    return get(conn, webhook_id)


def delete(conn: sa.Connection, webhook_id: str) -> None:
    """Delete a webhook and its deliveries (jobs still queued find nothing and end)."""
    get(conn, webhook_id)
    conn.execute(sa.delete(webhooks).where(webhooks.c.id == webhook_id))


# --- deliveries ---------------------------------------------------------------------------------


# Built once: every batch of "changed" events asks it.
_ENABLED_HOOKS = sa.select(webhooks.c.id, webhooks.c.workspace_id, webhooks.c.max_attempts).where(
    webhooks.c.workspace_id.in_(sa.bindparam("spaces", expanding=True)),
    webhooks.c.enabled.is_(sa.true()),
)


def queue_deliveries(
    conn: sa.Connection, events: Iterable[Row], *, now: datetime | None = None
) -> list[Row]:
    """One delivery (row and job) per enabled webhook of each event's workspace."""
    events = list(events)
    spaces = sorted({event["workspace_id"] for event in events})
    if not spaces:
        return []
    hooks = conn.execute(_ENABLED_HOOKS, {"spaces": spaces}).all()
    if not hooks:
        return []
    now = as_now(now)
    rows = []
    for event in events:
        for hook in hooks:
            if hook.workspace_id != event["workspace_id"]:
                continue
            row = {
                "id": new_id(),
                "webhook_id": hook.id,
                "event_id": event["id"],
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            rows.append(row)
            background_tasks.enqueue(
                conn,
                JOB_KIND,
                {"delivery_id": row["id"]},
                workspace_id=hook.workspace_id,
                max_attempts=hook.max_attempts,
                now=now,
            )
    conn.execute(sa.insert(webhook_deliveries), rows)
    return rows


def get_delivery(conn: sa.Connection, delivery_id: str) -> Row | None:
    row = (
        conn.execute(sa.select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id))
        .mappings()
        .first()
    )
    return None if row is None else dict(row)


def list_deliveries(
    conn: sa.Connection,
    webhook_id: str,
    *,
    status: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page:
    """A webhook's deliveries, newest first (only those with this status, if given)."""
    get(conn, webhook_id)
    query = sa.select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
    if status is not None:
        if status not in STATUSES:
            raise InvalidError(f"status: expected one of {', '.join(STATUSES)}")
        query = query.where(webhook_deliveries.c.status == status)
    order = ((webhook_deliveries.c.created_at, True), (webhook_deliveries.c.id, True))
    return keyset_page(conn, query, order, limit, cursor)


def record_attempt(
    conn: sa.Connection,
    delivery_id: str,
    *,
    succeeded: bool,
    final: bool,
    status_code: int | None,
    error: str | None,
    now: datetime | None = None,
) -> None:
    """One attempt's outcome: succeeded, retrying, or (``final``) failed for good."""
    now = as_now(now)
    status = "succeeded" if succeeded else "failed" if final else "retrying"
    conn.execute(
        sa.update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(
            status=status,
            attempts=webhook_deliveries.c.attempts + 1,
            last_status_code=status_code,
            last_error=None if error is None else error[: limits.ERROR_CHARS],
            updated_at=now,
            delivered_at=now if succeeded else None,
        )
    )


def prune_deliveries(conn: sa.Connection, older_than: datetime) -> int:
    """Remove finished deliveries last touched before ``older_than``."""
    return conn.execute(
        sa.delete(webhook_deliveries).where(
            webhook_deliveries.c.status.in_(("succeeded", "failed")),
            webhook_deliveries.c.updated_at < as_now(older_than),
        )
    ).rowcount
