"""A real server whose SQLite database stops taking writes while editors type.

The failure is real: another process renames the update log's table away (and back) in the
server's own database file. During it: live editors go on and see each other, REST writes
answer 503 with Retry-After within storage_wait_s, REST reads of live notes work, opening a
note that is not loaded closes with 1011, /health/ready says 503; afterwards everything typed
is stored, and the log holds one line per state change, no traceback.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import httpx

from server import closecodes
from tests.live_server import LiveServer
from tests.yclient import YClient, eventually


def rename(path, old: str, new: str) -> None:
    with sqlite3.connect(path, timeout=10) as conn:
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")


async def test_editors_keep_going_through_a_storage_failure_and_nothing_is_lost(tmp_path):
    path = tmp_path / "notes.sqlite"
    env = {
        "COSCRIBE_SQLITE_PATH": str(path),
        "COSCRIBE_STORAGE_WAIT_S": "1",
        "COSCRIBE_STORAGE_PROBE_S": "1",
        "COSCRIBE_FLUSH_RETRY_MAX_MS": "500",
    }
    with LiveServer(env, tmp_path) as server:
        api = httpx.Client(base_url=server.url, timeout=10)
        for note in ("live", "cold"):
            assert api.post("/api/notes", json={"id": note}).status_code == 201
        a = await YClient(server.url, "live").connect()
        b = await YClient(server.url, "live").connect()
        await asyncio.wait_for(asyncio.gather(a.synced.wait(), b.synced.wait()), 10)
        typed = []

        async def type_words(count: int) -> None:
            for _ in range(count):
                word = f"w{len(typed)} "
                typed.append(word)
                a.text.insert(len(str(a.text)), word)
                await asyncio.sleep(0.01)

        await type_words(20)
        rename(path, "note_updates", "note_updates_away")
        await type_words(100)
        await eventually(lambda: str(b.text) == "".join(typed), what="b sees a during the outage")

        started = time.monotonic()
        answer = api.put("/api/notes/live/text", json={"text": str(a.text) + "rest "})
        waited = time.monotonic() - started
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"] == "1"
        assert waited < 1 + 2, f"answered after {waited:.1f}s with storage_wait_s 1"
        typed.append("rest ")  # the edit is kept in the live room, and stored later
        assert (
            api.get("/api/notes/live/content", headers={"Accept": "text/plain"}).status_code == 200
        )

        ready = api.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["database"]["state"] == "failing"
        health = api.get("/health")
        assert health.status_code == 200
        assert health.json()["ready"] is False
        assert health.json()["unsaved_updates"] > 0 and health.json()["failed_writes"] > 0
        assert api.get("/health/live").status_code == 200

        cold = await YClient(server.url, "cold").connect()
        assert await cold.wait_closed() == closecodes.INTERNAL

        rename(path, "note_updates_away", "note_updates")
        await type_words(20)
        await eventually(
            lambda: api.get("/health/ready").status_code == 200, timeout=10, what="ready again"
        )
        await eventually(
            lambda: api.get("/health").json()["unsaved_updates"] == 0, timeout=10, what="stored"
        )
        await a.close()
        await b.close()
        log = server.log()
    assert "Traceback" not in log, log[-3000:]
    assert "Task exception was never retrieved" not in log
    assert log.count("note live: storing failing") == 1, log[-3000:]
    assert log.count("note live: storing recovered") == 1
    assert log.count("storage failing") == 1
    assert log.count("storage recovered") == 1

    with LiveServer(env, tmp_path) as again:
        text = httpx.get(
            f"{again.url}/api/notes/live/content", headers={"Accept": "text/plain"}
        ).text
    missing = [word for word in typed if word not in text]
    assert not missing, f"{len(missing)} of {len(typed)} words lost: {missing[:5]}"
