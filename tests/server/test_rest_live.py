"""REST and live editors on a real server: each sees the other's edits at once."""

import asyncio

import httpx

from crdt.protocol import SyncUpdate
from server import closecodes
from tests.live_server import LiveServer
from tests.yclient import YClient, eventually


async def editor(server, note_id: str) -> YClient:
    client = await YClient(server.url, note_id).connect()
    await asyncio.wait_for(client.synced.wait(), 10)
    return client


async def test_rest_edits_reach_live_editors_and_reads_see_live_edits(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        note = (await http.post("/api/notes", json={"id": "live", "text": "base"})).json()
        watcher = await editor(server, note["id"])
        assert str(watcher.text) == "base"

        await http.put("/api/notes/live/text", json={"text": "base, edited over REST"})
        await eventually(lambda: str(watcher.text) == "base, edited over REST", timeout=5)

        # A browser types; a REST read right after the server took it has it (from the live
        # room). The server applies an update before it echoes it to its sender: the echo
        # says the edit is in the room.
        seen = len(watcher.received)
        watcher.text.insert(0, "typed: ")
        await eventually(
            lambda: any(isinstance(m, SyncUpdate) for m in watcher.received[seen:]),
            what="the server's echo of the edit",
        )
        text = (await http.get("/api/notes/live/content", headers={"accept": "text/plain"})).text
        assert text == "typed: base, edited over REST"

        version = (await http.post("/api/notes/live/versions", json={"label": "v"})).json()
        await http.put("/api/notes/live/text", json={"text": "overwritten"})
        await eventually(lambda: str(watcher.text) == "overwritten", timeout=5)
        await http.post(f"/api/notes/live/versions/{version['id']}/restore")
        await eventually(lambda: str(watcher.text) == "typed: base, edited over REST", timeout=5)
        await watcher.close()


async def test_rest_text_edit_merges_with_concurrent_typing(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        await http.post("/api/notes", json={"id": "merge", "text": "alpha beta gamma"})
        browser = await editor(server, "merge")
        # The browser types while its edit has not reached the server (offline here), and an
        # agent rewrites the start over REST meanwhile: neither saw the other's change.
        await browser.close()
        browser.text.insert(len("alpha beta gamma"), " (typed)")
        await http.put("/api/notes/merge/text", json={"text": "ALPHA beta gamma"})
        await browser.connect()
        expected = "ALPHA beta gamma (typed)"
        await eventually(lambda: str(browser.text) == expected, timeout=5)
        await eventually_stored(http, "merge", expected)
        await browser.close()


async def eventually_stored(http: httpx.AsyncClient, note_id: str, expected: str) -> None:
    for _ in range(100):
        got = await http.get(f"/api/notes/{note_id}/content", headers={"accept": "text/plain"})
        if got.text == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"server text {got.text!r} != {expected!r}")


async def test_deleting_a_note_disconnects_its_editors_and_refuses_new_ones(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        await http.post("/api/notes", json={"id": "doomed", "text": "bye"})
        live = await editor(server, "doomed")
        assert (await http.delete("/api/notes/doomed")).status_code == 204
        assert await live.wait_closed() == closecodes.NOTE_NOT_FOUND
        late = await YClient(server.url, "doomed").connect()
        assert await late.wait_closed() == closecodes.NOTE_NOT_FOUND
        await http.post("/api/notes/doomed/undelete")
        back = await editor(server, "doomed")
        assert str(back.text) == "bye"
        await back.close()


async def test_automatic_versions_while_a_note_is_edited(tmp_path):
    env = {
        "COSCRIBE_SQLITE_PATH": str(tmp_path / "v.sqlite"),
        "COSCRIBE_AUTO_VERSION_INTERVAL_S": "1",
    }
    with LiveServer(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            writer = await editor(server, "auto")

            async def auto_versions() -> list:
                items = (await http.get("/api/notes/auto/versions")).json()["items"]
                return [v for v in items if v["kind"] == "auto"]

            assert await auto_versions() == [], "no edit, no version"
            await writer.set_awareness({"user": {"name": "Ada", "color": "#e6194b"}})
            writer.text.insert(0, "draft")
            for _ in range(100):
                if await auto_versions():
                    break
                await asyncio.sleep(0.05)
            versions = await auto_versions()
            assert len(versions) == 1
            content = await http.get(f"/api/notes/auto/versions/{versions[0]['id']}")
            assert content.json()["text"] == "draft"
            # Named after who was in the note, from the names their editors publish.
            assert versions[0]["label"] == "Saved automatically while Ada was editing"
            await asyncio.sleep(1.5)
            assert len(await auto_versions()) == 1, "no new edits, no new version"
            await writer.close()
