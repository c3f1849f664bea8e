"""Conversations and their messages.

Messages are numbered 1, 2, 3, ... per conversation. add_message bumps the conversation's
updated_at first: that row lock (PostgreSQL) or the single writer (SQLite) serializes
concurrent appends to one conversation, so ``max(seq) + 1`` never hands out a seq twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .. import limits, schema
from ..checks import as_now, check_id, choice, json_object, reference, text
from ..errors import NotFoundError
from ..paging import DEFAULT_LIMIT, Page, Row
from .entity import WORKSPACE, Entity, Ref

STATUSES = ("open", "closed", "archived")
ROLES = ("user", "assistant", "system", "tool")

_conversations = Entity(
    schema.conversations,
    "conversation",
    {
        "workspace_id": reference(nullable=False),
        "title": text(limits.TITLE_CHARS),
        "agent_id": reference(),
        "status": choice(*STATUSES),
    },
    refs={"workspace_id": WORKSPACE, "agent_id": Ref(schema.agents, "agent")},
)

_messages = Entity(
    schema.conversation_messages,
    "message",
    {
        "conversation_id": reference(nullable=False),
        "role": choice(*ROLES),
        "author": text(limits.AUTHOR_CHARS, nullable=True),
        "content": text(),
        "metadata": json_object(),
    },
    fixed=("conversation_id", "role", "author", "content", "metadata"),
    refs={"conversation_id": Ref(schema.conversations, "conversation", same_workspace=False)},
    order=[("seq", False)],
)

get = _conversations.get
update = _conversations.update
delete = _conversations.delete
get_message = _messages.get


def create(
    conn: sa.Connection,
    workspace_id: str,
    *,
    title: str = "",
    agent_id: str | None = None,
    status: str = "open",
    id: str | None = None,
) -> Row:
    """Create a conversation, optionally with an agent of the same workspace."""
    values = {"workspace_id": workspace_id, "title": title, "agent_id": agent_id, "status": status}
    return _conversations.create(conn, values, entity_id=id)


def list_conversations(
    conn: sa.Connection,
    workspace_id: str,
    *,
    status: str | list[str] | None = None,
    agent_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page:
    """The workspace's conversations, newest first, optionally by status and agent."""
    return _conversations.page(
        conn,
        workspace_id=workspace_id,
        status=status,
        agent_id=agent_id,
        limit=limit,
        cursor=cursor,
    )


def add_message(
    conn: sa.Connection,
    conversation_id: str,
    role: str,
    content: str,
    author: str | None = None,
    metadata: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> Row:
    """Append a message; its ``seq`` is one more than the conversation's last."""
    now = as_now(now)
    check_id("conversation id", conversation_id)
    values = {
        "conversation_id": conversation_id,
        "role": role,
        "author": author,
        "content": content,
        "metadata": metadata,
    }
    _messages.check(values)  # before the first write: bad input must leave nothing behind
    conversations = schema.conversations
    messages = schema.conversation_messages
    with conn.begin_nested():
        touched = conn.execute(
            conversations.update()
            .where(conversations.c.id == conversation_id)
            .values(updated_at=now)
        )
        if touched.rowcount == 0:
            raise NotFoundError(f"conversation {conversation_id!r} not found")
        last = sa.select(sa.func.coalesce(sa.func.max(messages.c.seq), 0)).where(
            messages.c.conversation_id == conversation_id
        )
        seq = conn.execute(last).scalar_one() + 1
        return _messages.create(conn, values, now=now, extra={"seq": seq})


def list_messages(
    conn: sa.Connection,
    conversation_id: str,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page:
    """The conversation's messages in order (seq ascending)."""
    return _messages.page(conn, conversation_id=conversation_id, limit=limit, cursor=cursor)
