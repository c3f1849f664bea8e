"""GET /api/events on real servers: every kind of event in order, patches that rebuild the
text, a typist's events held to one per maximum index delay while typing, Last-Event-ID across
a restart and across two instances sharing PostgreSQL, and the answers to ids that cannot be
resumed from."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from persistence import events, migrate
from persistence.config import database_config_from_env
from persistence.engine import Database
from tests.live_server import LiveServer, run_cli
from tests.sse import apply_patch, open_stream
from tests.yclient import YClient

FAST = {
    "COSCRIBE_SEARCH_INDEX_DELAY_MS": "300",
    "COSCRIBE_SEARCH_INDEX_MAX_DELAY_MS": "1000",
    "COSCRIBE_FEED_POLL_MS": "100",
}


@pytest.fixture
def sqlite_env(tmp_path):
    return {"COSCRIBE_SQLITE_PATH": str(tmp_path / "notes.sqlite"), **FAST}


async def test_every_kind_of_event_in_order_with_patches(tmp_path, sqlite_env):
    with LiveServer(sqlite_env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            async with open_stream(http, text="diff") as feed:
                await http.post("/api/notes", json={"id": "n", "title": "One", "text": "héllo"})
                created = await feed.next()
                assert (created["event"], created["data"]["title"]) == ("created", "One")
                changed = await feed.until("changed")
                assert apply_patch("", changed["data"]["patch"]) == "héllo"
                text = "héllo"
                for new in ("héllo wörld", "say héllo wörld", "say wörld 東京"):
                    await http.put("/api/notes/n/text", json={"text": new})
                    event = await feed.until("changed")
                    text = apply_patch(text, event["data"]["patch"])
                    assert text == new
                await http.patch("/api/notes/n", json={"title": "Two"})
                renamed = await feed.next()
                assert renamed["event"] == "renamed"
                assert renamed["data"]["previous_title"] == "One"
                await http.delete("/api/notes/n")
                assert (await feed.next())["event"] == "deleted"
                await http.post("/api/notes/n/undelete")
                assert (await feed.next())["event"] == "restored"
            ids = [int(event["id"]) for event in feed.events]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
            assert all(int(e["id"]) == e["data"]["id"] for e in feed.events)
            # Without ?text=diff the patch is left out, the version marker is not.
            async with open_stream(http, last_event_id="0", follow="false") as replay:
                kinds = []
                while True:
                    try:
                        event = await replay.next(5)
                    except EOFError:
                        break
                    kinds.append(event["event"])
                    if event["event"] == "changed":
                        assert "patch" not in event["data"] and event["data"]["version"] >= 1
            assert kinds == [e["event"] for e in feed.events]


async def test_a_typist_makes_an_event_per_maximum_delay_and_one_after(tmp_path, sqlite_env):
    with LiveServer(sqlite_env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            await http.post("/api/notes", json={"id": "typed"})
            async with open_stream(http, text="diff") as feed:
                typist = await YClient(server.url, "typed").connect()
                await asyncio.wait_for(typist.synced.wait(), 10)
                sentence = "the quick brown fox jumps over the lazy dog " * 4
                loop = asyncio.get_running_loop()

                async def type_it() -> float:
                    for char in sentence:  # about 50 keystrokes a second, never 0.3 s apart
                        typist.text.insert(len(typist.text), char)
                        await asyncio.sleep(0.02)
                    return loop.time()

                started = loop.time()
                typing = asyncio.create_task(type_it())
                changes, text = [], ""
                while text != sentence:
                    event = await feed.until("changed", 15)
                    changes.append((loop.time(), event))
                    text = apply_patch(text, event["data"]["patch"])
                stopped = await typing
                await typist.close()
            typed_for = stopped - started
            assert typed_for > 2.5, typed_for
            # The edits never paused for the delay (0.3 s), yet the feed followed them while
            # they went on: at most one event per maximum delay (1 s), not one per keystroke.
            during = [at for at, _ in changes if at < stopped]
            assert during, [at - started for at, _ in changes]
            assert len(changes) <= typed_for / 1.0 + 2, (len(changes), typed_for)


async def test_bad_and_unresumable_event_ids(tmp_path, sqlite_env):
    with LiveServer(sqlite_env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            for bad in ("abc", "-1", "1.5", "9" * 30):
                response = await http.get("/api/events", headers={"Last-Event-ID": bad})
                assert response.status_code == 400, (bad, response.text)
                assert response.headers["content-type"] == "application/problem+json"
            for i in range(3):
                await http.post("/api/notes", json={"id": f"n{i}"})
            async with open_stream(http, last_event_id="999999") as feed:
                resync = await feed.next()
            assert resync["event"] == "resync" and resync["data"]["reason"] == "unknown"
            assert int(resync["id"]) == resync["data"]["last_event_id"] == 3
            # Retention removed events 1 and 2: resuming after 0 or 1 would miss some.
            db = Database(database_config_from_env(sqlite_env))
            with db.begin() as conn:
                from datetime import UTC, datetime

                from persistence.schema import note_events

                conn.execute(
                    note_events.update()
                    .where(note_events.c.id <= 2)
                    .values(created_at=datetime(2000, 1, 1, tzinfo=UTC))
                )
                assert events.prune(conn, datetime(2001, 1, 1, tzinfo=UTC)) == 2
            db.close()
            async with open_stream(http, last_event_id="1") as feed:
                resync = await feed.next()
                assert resync["data"]["reason"] == "expired"
                await http.post("/api/notes", json={"id": "after"})
                assert (await feed.next())["data"]["note_id"] == "after"
            async with open_stream(http, last_event_id="2", follow="false") as feed:
                assert (await feed.next())["data"]["note_id"] == "n2"  # event 3: no gap


async def test_resuming_across_a_restart_and_across_instances(tmp_path, postgres_schemas):
    url = postgres_schemas.new()
    env = {"DATABASE_URL": url, **FAST}
    assert run_cli(["db", "migrate"], env, tmp_path).returncode == 0
    first = LiveServer(env, tmp_path).start()
    second = LiveServer(env, tmp_path).start()
    try:
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=10) as a,
            httpx.AsyncClient(base_url=second.url, timeout=10) as b,
        ):
            # A stream on the second instance sees what is done on the first.
            async with open_stream(b, text="diff") as feed:
                await a.post("/api/notes", json={"id": "shared", "text": "from a"})
                assert (await feed.next())["event"] == "created"
                changed = await feed.until("changed")
                assert apply_patch("", changed["data"]["patch"]) == "from a"
                last = changed["id"]
            # The second instance restarts; meanwhile the first goes on.
            second.stop()
            await a.put("/api/notes/shared/text", json={"text": "from a, while b was down"})
            await a.patch("/api/notes/shared", json={"title": "renamed meanwhile"})
            second.start()
            async with open_stream(b, last_event_id=last, text="diff") as feed:
                missed = [await feed.next(), await feed.next()]
            # The rename is recorded at once, the text change after the index delay.
            assert sorted(e["event"] for e in missed) == ["changed", "renamed"]
            (change,) = [e for e in missed if e["event"] == "changed"]
            assert apply_patch("from a", change["data"]["patch"]) == "from a, while b was down"
            assert [int(e["id"]) for e in missed] == [int(last) + 1, int(last) + 2]
    finally:
        first.stop()
        second.stop()
    db = Database(database_config_from_env({"DATABASE_URL": url}))
    try:
        assert migrate.status(db).up_to_date
    finally:
        db.close()


async def test_open_streams_end_when_the_server_stops(tmp_path, sqlite_env):
    server = LiveServer(sqlite_env, tmp_path).start()
    try:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=10) as http,
            open_stream(http) as feed,
        ):
            await http.post("/api/notes", json={"id": "n"})
            assert (await feed.next())["event"] == "created"
            started = asyncio.get_running_loop().time()
            code = await asyncio.to_thread(server.stop)
            assert code in (0, -signal.SIGTERM), server.log()[-3000:]
            assert asyncio.get_running_loop().time() - started < 8
            with pytest.raises((EOFError, httpx.HTTPError)):
                await feed.next(5)
    finally:
        server.stop()


async def test_another_instance_wakes_the_feed_at_once_on_postgres(tmp_path, postgres_schemas):
    # Polling every 30 s: what arrives sooner was woken by the other instance's NOTIFY.
    env = {"DATABASE_URL": postgres_schemas.new(), **FAST, "COSCRIBE_FEED_POLL_MS": "30000"}
    assert run_cli(["db", "migrate"], env, tmp_path).returncode == 0
    with LiveServer(env, tmp_path) as first, LiveServer(env, tmp_path) as second:
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=10) as a,
            httpx.AsyncClient(base_url=second.url, timeout=10) as b,
            open_stream(b) as feed,
        ):
            for i in range(3):
                started = asyncio.get_running_loop().time()
                await a.post("/api/notes", json={"id": f"n{i}"})
                event = await feed.next(10)
                assert event["data"]["note_id"] == f"n{i}"
                assert asyncio.get_running_loop().time() - started < 2
