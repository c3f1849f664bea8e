"""Rooms kept loaded after their last client left (COSCRIBE_ROOM_UNLOAD_GRACE_S), and the
cap on how many (COSCRIBE_MAX_IDLE_ROOMS), against a real server process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from server import closecodes
from tests.live_server import LiveServer
from tests.yclient import YClient, eventually


def health(server: LiveServer) -> dict:
    return httpx.get(f"{server.url}/health").json()


def serve(tmp_path: Path, grace_s: int, max_idle: int = 1000) -> LiveServer:
    return LiveServer(
        {
            "COSCRIBE_SQLITE_PATH": str(tmp_path / "notes.sqlite"),
            "COSCRIBE_ROOM_UNLOAD_GRACE_S": str(grace_s),
            "COSCRIBE_MAX_IDLE_ROOMS": str(max_idle),
        },
        tmp_path,
    )


async def visit(server: LiveServer, note_id: str, typed: str = "") -> str:
    """Connect, sync, type, wait until it is stored, leave; returns the text seen."""
    client = await YClient(server.url, note_id).connect()
    try:
        await asyncio.wait_for(client.synced.wait(), 10)
        if typed:
            stored = health(server)["stored_updates"]
            client.text.insert(len(client.text), typed)
            await eventually(
                lambda: (
                    (h := health(server))["stored_updates"] > stored and h["unsaved_updates"] == 0
                ),
                what="stored",
            )
        return str(client.text)
    finally:
        await client.close()


def stored_text(server: LiveServer, note_id: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/notes/{note_id}/content", headers={"Accept": "text/plain"})


async def test_a_client_back_within_the_grace_finds_the_room_loaded(tmp_path):
    with serve(tmp_path, grace_s=60) as server:
        assert await visit(server, "back", "hello") == "hello"
        await eventually(lambda: health(server)["idle_rooms"] == 1, what="the room idle")
        before = health(server)
        assert (before["rooms"], before["loads"], before["unloads"]) == (1, 1, 0)
        assert before["unsaved_updates"] == 0  # stored when its last client left

        assert await visit(server, "back", " again") == "hello again"
        # A REST edit of the idle room goes through it too.
        response = httpx.put(f"{server.url}/api/notes/back/text", json={"text": "rewritten"})
        assert response.status_code == 200, response.text
        assert await visit(server, "back") == "rewritten"
        after = health(server)
        assert after["loads"] == 1, "no load from storage while the room was idle"
        assert after["reuses"] == 3
        await eventually(lambda: health(server)["idle_rooms"] == 1, what="idle again")
    # Everything was stored: a new process loads it from storage.
    with serve(tmp_path, grace_s=0) as server:
        assert stored_text(server, "back").text == "rewritten"


async def test_after_the_grace_the_room_unloads(tmp_path):
    with serve(tmp_path, grace_s=1) as server:
        await visit(server, "brief", "kept")
        await eventually(
            lambda: (h := health(server))["rooms"] == 0 and h["idle_rooms"] == 0,
            what="the room unloaded after its grace",
        )
        assert health(server)["unloads"] == 1
        assert await visit(server, "brief") == "kept"
        assert health(server)["loads"] == 2  # loaded again from storage


async def test_past_the_cap_the_longest_idle_room_unloads_first(tmp_path):
    with serve(tmp_path, grace_s=300, max_idle=2) as server:
        for note_id in ("first", "second", "third"):
            await visit(server, note_id, note_id)
        await eventually(lambda: health(server)["unloads"] == 1, what="one room evicted")
        state = health(server)
        assert (state["rooms"], state["idle_rooms"], state["loads"]) == (2, 2, 3)
        # "first" left longest ago: it is the one that went.
        assert await visit(server, "second") == "second"
        assert await visit(server, "third") == "third"
        assert health(server)["loads"] == 3
        assert await visit(server, "first") == "first"
        assert health(server)["loads"] == 4
        await eventually(lambda: health(server)["unloads"] == 2, what="the next eviction")
        assert health(server)["idle_rooms"] == 2


async def test_a_note_deleted_while_its_room_is_idle_is_not_served_from_it(tmp_path):
    with serve(tmp_path, grace_s=300) as server:
        await visit(server, "doomed", "before")
        await eventually(lambda: health(server)["idle_rooms"] == 1, what="the room idle")
        assert httpx.delete(f"{server.url}/api/notes/doomed").status_code == 204
        state = health(server)
        assert (state["rooms"], state["idle_rooms"]) == (0, 0)
        client = await YClient(server.url, "doomed").connect()
        assert await client.wait_closed() == closecodes.NOTE_NOT_FOUND
        assert stored_text(server, "doomed").status_code == 404
        response = httpx.post(f"{server.url}/api/notes/doomed/undelete")
        assert response.status_code == 200, response.text
        assert await visit(server, "doomed") == "before"
        assert health(server)["loads"] == 2
