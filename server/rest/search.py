"""Search over REST: GET /api/search, over the notes the calling token reaches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from persistence import search
from persistence.errors import InvalidError
from persistence.ids import PATTERN as ID

from .api import Api, Call
from .crud import Query, page_model
from .problems import Problem


class SearchQuery(Query):
    q: str = Field(
        min_length=1,
        max_length=search.MAX_QUERY_CHARS,
        description='Words and "quoted phrases", all of which must match. Operators and '
        "punctuation are not syntax: they separate words.",
    )
    workspace_id: str | None = Field(
        None,
        pattern=ID,
        description="Only this workspace (an editor's or viewer's own is implied; an admin "
        "searches every workspace without it).",
    )


class SearchHit(BaseModel):
    note_id: str
    workspace_id: str
    title: str
    updated_at: datetime
    score: float = Field(description="Relevance: higher is better (comparable within a query).")
    snippet: str = Field(description="Plain text around the first match in the body.")
    highlights: list[list[int]] = Field(
        description="[start, length] of each matched word in `snippet`, in code points."
    )
    snippet_html: str = Field(description="The snippet, HTML-escaped, matches in <mark>.")
    title_highlights: list[list[int]] = Field(
        description="[start, length] of each matched word in `title`, in code points."
    )


def register(api: Api) -> None:
    @api.route(
        "GET",
        "/api/search",
        tag="search",
        query=SearchQuery,
        response=page_model(SearchHit),
        errors=(422,),
        description="Full-text search of titles and bodies, best match first. The index "
        "follows edits about COSCRIBE_SEARCH_INDEX_DELAY_MS after they pause, and within "
        "COSCRIBE_SEARCH_INDEX_MAX_DELAY_MS while they go on. Deleted notes are never "
        "found. 422 for an empty query, one over 1000 characters or 32 words, or one with no "
        "word in it.",
    )
    async def search_notes(call: Call) -> Any:
        """Search notes"""
        q: SearchQuery = call.query
        try:
            parsed = search.parse_query(q.q)
        except InvalidError as exc:
            raise Problem(422, f"q: {exc}") from None
        principal = call.principal
        if q.workspace_id is not None:
            spaces: list[str] | None = [q.workspace_id]
        elif principal.is_admin:
            spaces = None
        else:
            spaces = [principal.workspace_id] if principal.workspace_id else []

        def run(conn: Any) -> dict[str, Any]:
            page = search.search(conn, parsed, workspace_ids=spaces, limit=q.limit, cursor=q.cursor)
            return {"items": page.items, "next_cursor": page.next_cursor}

        return await call.read(run)
