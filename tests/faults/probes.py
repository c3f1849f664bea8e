"""What a running server must answer while its storage fails and after it recovers.

The contract: `/health` stays 200 and says live, not ready, database
failing, with counts of unsaved rooms and updates and of failed writes; `/health/live` is
always 200, `/health/ready` 503 while not ready. REST writes answer 503 problem+json with
Retry-After within COSCRIBE_STORAGE_WAIT_S; reads of live notes keep working; a websocket on a
note that must be loaded is closed with 1011. The log says once per note that storing fails
and once that it recovered, without tracebacks.

A fault test runs through its whole scenario and collects every breach in `Findings`, so that
one run (each takes half a minute) reports all of them, then the count of stored words.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import websockets

from server import closecodes
from tests.yclient import YClient

STORAGE_WAIT_S = 2  # COSCRIBE_STORAGE_WAIT_S of the servers under test
MARGIN_S = 3  # for a loaded machine, on top of the setting
# How long a server may take to notice a fault or a recovery (a flush attempt and a backoff
# step; the servers under test cap the backoff at one second).
NOTICE_S = 15
# Per note and per outage: a line when storing starts failing, one when it recovers, and
# room for a few more (a summary with counts) but not one per attempt.
MAX_LOG_LINES_PER_NOTE = 10
COUNTS = ("unsaved_rooms", "unsaved_updates", "failed_writes")
REQUEST_LINE = re.compile(r'"(?:[A-Z]+ /|WebSocket /)')
# The start of a log record (coscribe's own format, uvicorn's, the CLI's), which ends a traceback.
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d |[A-Z]+: |coscribe: ")
CHAINED = ("During handling of the above exception", "The above exception was the direct cause")

SERVER_ENV = {
    "COSCRIBE_STORAGE_WAIT_S": str(STORAGE_WAIT_S),
    "COSCRIBE_FLUSH_RETRY_MAX_MS": "1000",
}


class Findings:
    """Breaches of the contract seen during one scenario."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, ok: bool, problem: str) -> bool:
        if not ok:
            self.problems.append(problem)
        return ok

    def add(self, problems: list[str]) -> None:
        self.problems += problems


async def health(http: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    """The status and body of /health; status 0 when there was no answer."""
    try:
        response = await http.get("/health", timeout=10)
    except httpx.TransportError as exc:
        return 0, {"no answer": repr(exc)}
    try:
        body = response.json()
    except ValueError:
        body = {}
    return response.status_code, body if isinstance(body, dict) else {}


def database_state(body: dict[str, Any]) -> Any:
    database = body.get("database")
    return database.get("state") if isinstance(database, dict) else None


def says_failing(body: dict[str, Any]) -> bool:
    return body.get("ready") is False and database_state(body) == "failing"


def says_ok(body: dict[str, Any]) -> bool:
    return body.get("ready") is True and database_state(body) == "ok"


def nothing_unsaved(body: dict[str, Any]) -> bool:
    return body.get("unsaved_updates") == 0 and body.get("unsaved_rooms") == 0


async def wait_health(
    http: httpx.AsyncClient, wanted: Callable[[dict[str, Any]], bool], timeout: float = NOTICE_S
) -> bool:
    """Poll /health until `wanted(body)`; False at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = await health(http)
        if status == 200 and wanted(body):
            return True
        await asyncio.sleep(0.2)  # between polls
    return False


async def check_health(
    findings: Findings, http: httpx.AsyncClient, *, failing: bool, when: str
) -> dict[str, Any]:
    """/health, /health/live and /health/ready as they must be now."""
    status, body = await health(http)
    shown = {k: body.get(k) for k in ("live", "ready", "database", *COUNTS)}
    findings.check(status == 200, f"{when}: GET /health answered {status}, not 200")
    findings.check(body.get("live") is True, f"{when}: /health live is not true: {shown}")
    wanted = "not ready, database failing" if failing else "ready, database ok"
    findings.check(
        (says_failing if failing else says_ok)(body), f"{when}: /health is not {wanted}: {shown}"
    )
    for count in COUNTS:
        findings.check(
            isinstance(body.get(count), int), f"{when}: /health has no count {count!r}: {shown}"
        )
    for path, expected in (("/health/live", 200), ("/health/ready", 503 if failing else 200)):
        try:
            answer = (await http.get(path, timeout=10)).status_code
        except httpx.TransportError as exc:
            answer = repr(exc)
        findings.check(answer == expected, f"{when}: GET {path} answered {answer}, not {expected}")
    return body


async def check_write_refused(
    findings: Findings, http: httpx.AsyncClient, method: str, path: str, body: Any, when: str
) -> None:
    """A REST write while storage is down: 503 problem+json with Retry-After, in bounded time."""
    limit = STORAGE_WAIT_S + MARGIN_S
    what = f"{when}: {method} {path}"
    started = time.monotonic()
    try:
        response = await http.request(method, path, json=body, timeout=limit + 10)
    except httpx.TimeoutException:
        findings.check(False, f"{what} had no answer after {limit + 10} s")
        return
    except httpx.TransportError as exc:
        findings.check(False, f"{what}: the connection ended without an answer ({exc!r})")
        return
    took = time.monotonic() - started
    findings.check(took <= limit, f"{what} took {took:.1f} s (limit {limit} s)")
    if not findings.check(
        response.status_code == 503,
        f"{what} answered {response.status_code}, not 503: {response.text[:200]}",
    ):
        return
    kind = response.headers.get("content-type", "")
    findings.check(kind.startswith("application/problem+json"), f"{what}: content-type {kind}")
    findings.check("retry-after" in response.headers, f"{what}: 503 without Retry-After")


async def check_live_read(
    findings: Findings, http: httpx.AsyncClient, note_id: str, word: str, when: str
) -> None:
    """A note open in a live room is read from the room, whatever storage does."""
    path = f"/api/notes/{note_id}/content"
    try:
        response = await http.get(
            path, headers={"accept": "text/plain"}, timeout=STORAGE_WAIT_S + 10
        )
    except httpx.TransportError as exc:
        findings.check(False, f"{when}: GET {path} had no answer ({exc!r})")
        return
    if findings.check(
        response.status_code == 200,
        f"{when}: GET {path} answered {response.status_code}: {response.text[:200]}",
    ):
        findings.check(word in response.text, f"{when}: GET {path} lacks {word}")


async def check_cold_open_refused(
    findings: Findings, base_url: str, note_id: str, when: str
) -> None:
    """A websocket on a note that is not loaded cannot be served: closed with 1011."""
    client = YClient(base_url, note_id)
    what = f"{when}: a websocket opening {note_id} (not loaded)"
    try:
        await client.connect(open_timeout=STORAGE_WAIT_S + MARGIN_S)
    except websockets.InvalidStatus as exc:
        findings.check(False, f"{what} was refused with HTTP {exc.response.status_code}, not 1011")
        return
    except (OSError, TimeoutError, websockets.WebSocketException) as exc:
        findings.check(False, f"{what} failed to open ({exc!r}), not closed with 1011")
        return
    try:
        code = await client.wait_closed(STORAGE_WAIT_S + MARGIN_S + 5)
    except TimeoutError:
        findings.check(False, f"{what} stayed open (synced: {client.synced.is_set()})")
    else:
        findings.check(code == closecodes.INTERNAL, f"{what} was closed with {code}, not 1011")
    finally:
        await client.close()


def storage_lines(log: str, note_id: str) -> list[str]:
    """The lines that speak of a note, request lines aside."""
    mention = re.compile(rf"(?<![\w-]){re.escape(note_id)}(?![\w-])")
    return [
        line for line in log.splitlines() if mention.search(line) and not REQUEST_LINE.search(line)
    ]


def tracebacks_in(log: str) -> Iterator[str]:
    """Each logged traceback as the record that logged it and the exception it ended with
    (the last of a chain)."""
    lines = log.splitlines()
    for at, line in enumerate(lines):
        if not line.startswith("Traceback"):
            continue
        said = next((lines[k] for k in range(at - 1, -1, -1) if lines[k].strip()), "")
        if said.startswith(CHAINED):
            continue  # part of the chain reported from its first traceback
        raised = "?"
        for following in lines[at + 1 :]:
            if LOG_RECORD.match(following):
                break
            if following.strip() and not following.startswith((" ", "Traceback", *CHAINED)):
                raised = following
        yield f"{said.strip()[:200]} -> {raised.strip()[:200]}"


def check_log(
    findings: Findings, log: str, note_ids: list[str], outages: int = 1, *, optional: bool = False
) -> None:
    """Per note and outage one line as storing starts failing, one as it recovers, and no
    traceback for an expected storage error. `optional`: faults the server may ride out
    without a failed write (a quick restart), so zero such lines is right too."""
    tracebacks = list(tracebacks_in(log))
    findings.check(
        not tracebacks,
        f"the server log holds {len(tracebacks)} tracebacks: " + " | ".join(tracebacks[:3]),
    )
    for note_id in note_ids:
        lines = storage_lines(log, note_id)
        failing = sum("failing" in line for line in lines)
        recovered = sum("recovered" in line for line in lines)
        expected = range(0 if optional else 1, outages + 1)
        findings.check(
            failing in expected and recovered == failing,
            f"log: {failing} 'failing' and {recovered} 'recovered' lines for {note_id} "
            f"(expected one each per outage, {outages} outages): {lines[:4]}",
        )
        limit = MAX_LOG_LINES_PER_NOTE * outages
        findings.check(
            len(lines) < limit,
            f"log: {len(lines)} lines about {note_id} (fewer than {limit} expected), "
            f"e.g. {lines[:3]}",
        )
