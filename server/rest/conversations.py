"""Conversations and their messages: /api/conversations, /api/conversations/{id}/messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from persistence import limits
from persistence.stores import conversations

from .api import Api, Call
from .crud import Body, Id, Query, Resource, Stored, page_model, page_of, unchanged

ConversationStatus = Literal["open", "closed", "archived"]
Role = Literal["user", "assistant", "system", "tool"]


class Conversation(Stored):
    workspace_id: str
    title: str
    agent_id: str | None
    status: ConversationStatus


class ConversationCreate(Body):
    workspace_id: Id
    title: str = Field("", max_length=limits.TITLE_CHARS)
    agent_id: Id | None = Field(None, description="An agent of the same workspace.")
    status: ConversationStatus = "open"
    id: Id | None = None


class ConversationUpdate(Body):
    title: str = unchanged(max_length=limits.TITLE_CHARS)
    agent_id: Id | None = None
    status: ConversationStatus = unchanged()


class ConversationQuery(Query):
    workspace_id: Id
    status: ConversationStatus | None = None
    agent_id: Id | None = None


class Message(BaseModel):
    id: str
    conversation_id: str
    seq: int = Field(description="Position in the conversation: 1, 2, 3, ...")
    role: Role
    author: str | None
    content: str
    metadata: dict[str, Any]
    created_at: datetime


class MessageCreate(Body):
    role: Role
    content: str = Field(max_length=limits.TEXT_CHARS)
    author: str | None = Field(None, max_length=limits.AUTHOR_CHARS)
    metadata: dict[str, Any] = Field(default_factory=dict)


def register(api: Api) -> None:
    resource = Resource.over(
        conversations,
        list=conversations.list_conversations,
        name="conversation",
        plural="conversations",
        out=Conversation,
        create_body=ConversationCreate,
        update_body=ConversationUpdate,
        query=ConversationQuery,
        list_errors=(404,),
    )
    resource.register(api)
    messages = f"{resource.item_path}/messages"

    @api.route("GET", messages, tag="conversations", query=Query, response=page_model(Message))
    async def list_messages(call: Call) -> Any:
        """List a conversation's messages, oldest first"""
        conversation_id, query = resource.item_id(call), call.query.model_dump(exclude_none=True)
        result = await call.read(
            lambda conn: conversations.list_messages(conn, conversation_id, **query)
        )
        return page_of(Message, result)

    @api.route(
        "POST", messages, tag="conversations", body=MessageCreate, response=Message, status=201
    )
    async def add_message(call: Call) -> Any:
        """Add a message at the end of a conversation"""
        conversation_id, values = resource.item_id(call), call.body.model_dump()
        row = await call.write(
            lambda conn: conversations.add_message(conn, conversation_id, **values)
        )
        return Message.model_validate(row)
