"""Hostile CRDT content against a real server process: every attack that used to kill it
(SIGSEGV on a deep Any or deep XML, a Rust panic after a clock of 2**32 - 1, allocations of
announced counts) is refused before pycrdt sees it, over the websocket (1007, 1009 for size
limits) and over REST (400, 413). Afterwards the process is the same and healthy, a
bystander connected throughout still receives a writer's edits and holds the right document,
and nothing from the attacks is stored: the note reads back unchanged, also after a restart.

A note stored with such content by an older version is refused cleanly when opened (1011
with a reason, REST 409 naming the command) and repaired by `coscribe notes repair`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

import httpx
import pycrdt
import pytest
import websockets

from crdt import document, protocol
from crdt.lib0 import write_var_uint
from server import closecodes
from tests.crdt import yjs_v1 as y
from tests.live_server import LiveServer, run_cli
from tests.yclient import YClient, eventually

NOTE = "target"
ATTACKER = 5_000
BYSTANDER_ID = 70_001
WRITER_ID = 70_002
LAST = 2**32 - 1


def any_update(value: bytes, client: int = ATTACKER, clock: int = 0) -> bytes:
    return y.update([(client, clock, [y.item(y.ANY, y.any_content([value]), root="evil")])])


def deep_xml(depth: int, client: int = ATTACKER) -> bytes:
    structs = [y.item(y.TYPE, y.type_(y.XML_ELEMENT, "p"), root="xml")]
    structs += [
        y.item(y.TYPE, y.type_(y.XML_ELEMENT, "p"), parent=(client, level - 1))
        for level in range(1, depth)
    ]
    return y.update([(client, 0, structs)])


def text_at(client: int, clock: int) -> bytes:
    return y.update([(client, clock, [y.item(y.STRING, y.string("x"), root="content")])])


def chain(structs: int, client: int = ATTACKER) -> bytes:
    """One-character structs, each after the previous: a shape yrs integrates in quadratic
    time (200,000 of them: 200 s of the event loop)."""
    first = y.item(y.STRING, y.string("a"), root="content")
    rest = [y.item(y.STRING, y.string("a"), origin=(client, i - 1)) for i in range(1, structs)]
    return y.update([(client, 0, [first, *rest])])


@pytest.fixture
def server(tmp_path):
    """A real server whose struct limit is out of the way, so each attack meets the check it
    is about (the deep XML alone is 100,000 structs)."""
    env = {
        "COSCRIBE_SQLITE_PATH": str(tmp_path / "notes.sqlite"),
        "COSCRIBE_MAX_UPDATE_STRUCTS": "1000000",
    }
    with LiveServer(env, tmp_path) as live:
        yield live


# (what, update, websocket close code, REST status)
ATTACKS = [
    ("an Any nested 40,000 deep", any_update(y.nested_any(40_000)), 1007, 400),
    ("XML elements nested 100,000 deep", deep_xml(100_000), 1007, 400),
    ("a clock of 2**32 - 1 under the bystander's id", text_at(BYSTANDER_ID, LAST), 1007, 400),
    ("a clock past the bystander's under its id", text_at(BYSTANDER_ID, 2**31), 1007, 400),
    ("a clock of 2**53 - 1", text_at(ATTACKER, 2**53 - 2), 1007, 400),
    (
        "an Any array announcing 2**40 entries",
        any_update(b"\x75" + write_var_uint(2**40)),
        1009,
        413,
    ),
    ("2**50 client sections", write_var_uint(2**50) + b"\x00" * 8, 1009, 413),
    (
        "an announced count past the bytes left",
        any_update(b"\x75" + write_var_uint(4096)),
        1007,
        400,
    ),
    (
        "JSON content yrs misreads",
        y.update([(ATTACKER, 0, [y.item(y.JSON, y.json_content(["1"]), root="evil")])]),
        1007,
        400,
    ),
]


async def attack(server: LiveServer, frames: list[bytes], note: str = NOTE) -> int | None:
    """Open a socket to the note, send the frames, return the close code the server gave."""
    url = f"{server.url.replace('http', 'ws', 1)}/ws/{note}"
    async with websockets.connect(url, max_size=None) as ws:
        for frame in frames:
            await ws.send(frame)
        try:
            async with asyncio.timeout(30):
                while True:
                    await ws.recv()
        except websockets.ConnectionClosed:
            return ws.close_code
    return None


async def connected(server: LiveServer, note: str, client_id: int) -> YClient:
    client = await YClient(server.url, note, client_id=client_id).connect()
    await asyncio.wait_for(client.synced.wait(), 10)
    return client


def content(server: LiveServer, note: str = NOTE) -> dict:
    response = httpx.get(f"{server.url}/api/notes/{note}/content", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["content"]


def stored_clients(server: LiveServer, note: str = NOTE) -> set[int]:
    vector = httpx.get(f"{server.url}/api/notes/{note}/state-vector", timeout=30).content
    return set(document.decode_state_vector(vector))


async def test_hostile_updates_are_refused_and_the_server_serves_on(server):
    pid = server.process.pid
    httpx.post(f"{server.url}/api/notes", json={"id": NOTE, "text": "base"}).raise_for_status()
    bystander = await connected(server, NOTE, BYSTANDER_ID)
    writer = await connected(server, NOTE, WRITER_ID)
    writer.text.insert(4, " typed")
    await eventually(lambda: str(bystander.text) == "base typed")

    for what, update, code, _ in ATTACKS:
        got = await attack(server, [protocol.sync_update(update)])
        assert got == code, f"{what}: closed with {got}, expected {code}"
        got = await attack(server, [protocol.sync_step2(update)])
        assert got == code, f"{what} (step2): closed with {got}, expected {code}"
    # a state vector with a clock past 32 bits, in a sync step 1
    step1 = protocol.sync_step1(write_var_uint(1) + write_var_uint(9) + write_var_uint(2**32))
    assert await attack(server, [step1]) == closecodes.INVALID_PAYLOAD

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for what, update, _, status in ATTACKS:
            response = await http.post(
                f"/api/notes/{NOTE}/updates",
                content=update,
                headers={"content-type": "application/octet-stream"},
            )
            assert response.status_code == status, f"{what}: {response.status_code}"
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["status"] == status
        vector = "AQmAgICAEA"  # one client at clock 2**32
        response = await http.get(f"/api/notes/{NOTE}/snapshot", params={"state_vector": vector})
        assert response.status_code == 400

    # The same process, healthy; the bystander was never disturbed and still follows.
    assert server.process.poll() is None and server.process.pid == pid
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert bystander.close_code is None and writer.close_code is None
    writer.text.insert(len(writer.text), " after")
    await eventually(lambda: str(bystander.text) == "base typed after")
    bystander.text.insert(0, ">")  # the bystander's own edits still reach the writer
    await eventually(lambda: str(writer.text) == ">base typed after")
    await eventually(lambda: content(server) == {"content": ">base typed after"})
    assert ATTACKER not in stored_clients(server)
    await bystander.close()
    await writer.close()

    server.stop()
    server.start()
    assert content(server) == {"content": ">base typed after"}
    assert ATTACKER not in stored_clients(server)
    late = await connected(server, NOTE, 70_003)
    assert str(late.text) == ">base typed after"
    await late.close()
    log = server.log()
    assert "Traceback" not in log
    assert f"note={NOTE}>: update refused (max_any_depth" in log  # one line naming both


async def test_an_update_of_too_many_structs_is_refused_before_it_stalls_the_server(tmp_path):
    env = {"COSCRIBE_SQLITE_PATH": str(tmp_path / "notes.sqlite")}  # the default: 20,000
    with LiveServer(env, tmp_path) as server:
        bystander = await connected(server, NOTE, BYSTANDER_ID)
        bystander.text.insert(0, "kept")
        started = asyncio.get_running_loop().time()
        assert await attack(server, [protocol.sync_update(chain(200_000))]) == closecodes.TOO_BIG
        response = httpx.post(
            f"{server.url}/api/notes/{NOTE}/updates",
            content=chain(20_001),
            headers={"content-type": "application/octet-stream"},
            timeout=30,
        )
        assert response.status_code == 413 and "max_update_structs" in response.text
        assert asyncio.get_running_loop().time() - started < 30, "refused, not integrated"
        url = f"{server.url.replace('http', 'ws', 1)}/ws/{NOTE}"
        async with websockets.connect(url, max_size=None) as ws:  # at the limit: it applies
            await ws.send(protocol.sync_update(chain(20_000)))
            await eventually(lambda: str(bystander.text).count("a") == 20_000, timeout=30)
        assert bystander.close_code is None and server.process.poll() is None
        await bystander.close()


async def test_types_nested_one_level_per_update_stop_at_the_limit(server):
    """The depth of shared types holds across updates: 100 updates each nest one XML
    element deeper, the 101st is refused, and the note renders."""
    note = "nested"
    pid = server.process.pid
    bystander = await connected(server, note, BYSTANDER_ID)
    url = f"{server.url.replace('http', 'ws', 1)}/ws/{note}"
    async with websockets.connect(url, max_size=None) as ws:
        for level in range(101):
            if level == 0:
                struct = y.item(y.TYPE, y.type_(y.XML_ELEMENT, "p"), root="xml")
            else:
                struct = y.item(y.TYPE, y.type_(y.XML_ELEMENT, "p"), parent=(ATTACKER, level - 1))
            await ws.send(protocol.sync_update(y.update([(ATTACKER, level, [struct])])))
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(30):
                while True:
                    await ws.recv()
        assert ws.close_code == closecodes.INVALID_PAYLOAD
    fragment = bystander.doc.get("xml", type=pycrdt.XmlFragment)
    await eventually(lambda: str(fragment).count("<p>") == 100, timeout=20)
    assert content(server, note)["xml"].count("<p>") == 100  # rendered, no crash
    # Deleting the outer element walks every level: still no crash.
    del fragment.children[0]
    await eventually(lambda: content(server, note)["xml"] == "", timeout=20)
    assert server.process.poll() is None and server.process.pid == pid
    await bystander.close()


async def test_a_stored_note_with_refused_content_is_refused_and_repaired(tmp_path):
    """An older version stored an update that now is refused: opening the note answers
    1011 (websocket) and 409 (REST) naming the repair command, and never crashes; `coscribe
    notes repair` saves the update raw, then rebuilds the note from the rest."""
    database = tmp_path / "notes.sqlite"
    env = {"COSCRIBE_SQLITE_PATH": str(database)}
    poison = any_update(y.nested_any(40_000), client=ATTACKER)
    with LiveServer(env, tmp_path) as server:
        httpx.post(f"{server.url}/api/notes", json={"id": "old", "text": "kept"})
        writer = await connected(server, "old", WRITER_ID)
        writer.text.insert(4, " and typed")
        await eventually(lambda: content(server, "old") == {"content": "kept and typed"})
        await writer.close()
    with sqlite3.connect(database) as db:  # as a version without the checks stored it
        (seq,) = db.execute("select last_seq + 1 from notes where id = 'old'").fetchone()
        db.execute(
            'insert into note_updates (note_id, seq, "update", created_at) '
            "values ('old', ?, ?, '2026-01-01 00:00:00.000000')",
            (seq, poison),
        )
        db.execute("update notes set last_seq = ? where id = 'old'", (seq,))

    with LiveServer(env, tmp_path) as server:
        pid = server.process.pid
        url = f"{server.url.replace('http', 'ws', 1)}/ws/old"
        async with websockets.connect(url) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                async with asyncio.timeout(30):
                    while True:
                        await ws.recv()
            assert ws.close_code == closecodes.INTERNAL
            assert "coscribe notes repair old" in ws.close_reason
        response = httpx.get(f"{server.url}/api/notes/old/content", timeout=30)
        assert response.status_code == 409
        assert "coscribe notes repair old" in response.json()["detail"]
        response = httpx.post(f"{server.url}/api/notes/old/text", json={"text": "!"}, timeout=30)
        assert response.status_code == 409
        assert server.process.poll() is None and server.process.pid == pid
        assert httpx.get(f"{server.url}/health").status_code == 200
        assert "Traceback" not in server.log()

    checked = run_cli(["notes", "check"], env, tmp_path)
    assert checked.returncode == 1, checked.stderr
    assert f"old: update-{seq} refused (max_any_depth" in checked.stdout
    dry = run_cli(["notes", "repair", "old", "--dry-run"], env, tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "would save update-" in dry.stdout and not (tmp_path / "old.refused").exists()
    out = tmp_path / "saved"
    repaired = run_cli(["notes", "repair", "old", "--out", str(out)], env, tmp_path)
    assert repaired.returncode == 0, repaired.stderr
    assert (out / f"update-{seq}.bin").read_bytes() == poison  # nothing lost
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["refused"][0]["kind"] == "update"
    assert run_cli(["notes", "check"], env, tmp_path).returncode == 0

    with LiveServer(env, tmp_path) as server:
        assert content(server, "old") == {"content": "kept and typed"}
        editor = await connected(server, "old", 70_004)
        assert str(editor.text) == "kept and typed"
        editor.text.insert(0, "again: ")
        await eventually(lambda: content(server, "old") == {"content": "again: kept and typed"})
        await editor.close()
