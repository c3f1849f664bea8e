"""The change feed over REST: GET /api/events, Server-Sent Events.

Resuming: a client sends the id of the last event it received as ``Last-Event-ID`` (an
EventSource does so by itself on reconnecting) or as ``?last_event_id=``, and gets every event
after it, in order, with none missing, as long as it is within ``COSCRIBE_EVENT_RETENTION_S``.
An id the database never handed out ("unknown": another database, a restored backup) or one
whose followers were removed by retention ("expired") cannot be resumed from: the stream then
starts with a ``resync`` event and goes on from the newest event, and the client should re-read
what it follows. An id that is not a whole number is a 400.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import StreamingResponse

from persistence import events
from persistence.ids import PATTERN as ID

from ..auth import Refused, bearer
from ..feed import StreamOptions, sse, stream
from ..health import STORAGE_ERRORS
from .api import Api, Call
from .problems import Problem

EVENT_STREAM = "text/event-stream"
MAX_EVENT_ID = 2**63 - 1
# One event of the stream (OpenAPI describes an event-stream response event by event): `data`
# is the event as JSON, `event` its type (created, renamed, deleted, restored, changed, resync,
# end), `id` what to send back as Last-Event-ID.
SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}


class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: Literal["diff"] | None = Field(
        None, description="`diff`: 'changed' events carry the text change as a patch."
    )
    workspace_id: str | None = Field(
        None, pattern=ID, description="Only this workspace's notes (an admin sees every one)."
    )
    follow: bool = Field(
        True,
        description="false: send the events after Last-Event-ID that exist now, then end "
        "(for a client that polls instead of keeping a stream open).",
    )
    last_event_id: str | None = Field(
        None, max_length=20, description="Resume after this event id (as Last-Event-ID does)."
    )


def _event_id(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_EVENT_ID:
        raise Problem(400, f"Last-Event-ID {raw[:40]!r} is not an event id (a whole number)")
    return int(raw)


def register(api: Api) -> None:
    @api.route(
        "GET",
        "/api/events",
        tag="events",
        query=EventsQuery,
        response=SSE_EVENT,
        media_type=EVENT_STREAM,
        errors=(400,),
        description="Server-Sent Events: created, renamed, deleted, restored and changed "
        "events of the notes the token reaches, each with its id. Send Last-Event-ID to "
        "resume; an unknown or expired one gets a `resync` event first. See docs/api.md.",
    )
    async def follow_events(call: Call) -> Any:
        """Follow changes to notes (Server-Sent Events)"""
        q: EventsQuery = call.query
        header = call.request.headers.get("last-event-id")
        resume = _event_id(header if header is not None else q.last_event_id)
        principal = call.principal
        services = call.services
        feed = services.feed
        head, pruned = await call.read(
            lambda conn: (events.last_id(conn), events.pruned_through(conn))
        )
        notice = b""
        if resume is None:
            after = head
        elif resume > head or resume < pruned:
            reason = "unknown" if resume > head else "expired"
            notice = sse(
                "resync",
                {
                    "reason": reason,
                    "last_event_id": head,
                    "detail": f"event {resume} is {reason}: re-read the notes you follow; "
                    f"the stream goes on after event {head}",
                },
                head,
            )
            after = head
        else:
            after = resume
        if q.workspace_id is not None:
            spaces: list[str] | None = [q.workspace_id]
        elif principal.is_admin:
            spaces = None
        else:
            spaces = [principal.workspace_id] if principal.workspace_id else []

        def visible(row: dict[str, Any]) -> bool:
            return principal.reaches(row["workspace_id"]) and (
                spaces is None or row["workspace_id"] in spaces
            )

        token = bearer(call.request.headers)
        client = call.request.client
        peer = f"{client.host}:{client.port}" if client else "unknown"

        async def still_allowed() -> bool:
            if services.stopped:
                return False
            try:
                async with asyncio.timeout(services.settings.storage_wait_s):
                    await services.auth.principal(token, peer)
            except Refused:
                return False
            except (TimeoutError, *STORAGE_ERRORS):
                return True  # storage is down, not the token: checked again next time
            return True

        options = StreamOptions(
            after=after,
            visible=visible,
            diff=q.text == "diff",
            keepalive_s=services.settings.feed_keepalive_s,
            still_allowed=still_allowed,
            workspace_ids=spaces,
            notice=notice,
            follow=q.follow,
        )
        return StreamingResponse(
            stream(feed, options),
            media_type=EVENT_STREAM,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
