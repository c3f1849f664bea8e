"""A Server-Sent Events reader over httpx, for the change-feed tests: each event as a dict
(``event``, ``id``, ``data`` parsed from JSON), read from a real streaming response."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx


class EventStream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: list[dict[str, Any]] = []
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        """The next event (comments and the retry field are skipped)."""
        fields: dict[str, Any] = {}
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line == "":
                    if "data" in fields:
                        event = {**fields, "data": json.loads(fields["data"])}
                        self.events.append(event)
                        return event
                    fields = {}
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
        raise EOFError("the stream ended")

    async def until(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        """Read events until one of this kind; returns it."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.next(timeout)
                if event.get("event") == kind:
                    return event

    async def quiet(self, seconds: float) -> list[dict[str, Any]]:
        """Every event that arrives within ``seconds``."""
        got = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    got.append(await self.next(seconds + 1))
        return got


@contextlib.asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient, *, last_event_id: str | None = None, **params: str
) -> AsyncIterator[EventStream]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    async with http.stream("GET", "/api/events", params=params, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)


def apply_patch(text: str, patch: list[dict[str, Any]]) -> str:
    """Apply a "changed" event's patch (positions in code points of the old text)."""
    out, at = [], 0
    for edit in patch:
        out.append(text[at : edit["position"]])
        out.append(edit["insert"])
        at = edit["position"] + edit["delete"]
    out.append(text[at:])
    return "".join(out)
