"""The y-websocket endpoint against a real server process, with pycrdt peers."""

import asyncio

import httpx
import pycrdt
import pytest
import websockets

from crdt import document, protocol
from server import closecodes
from tests.live_server import LiveServer
from tests.yclient import YClient, eventually


def health(server) -> dict:
    return httpx.get(f"{server.url}/health").json()


def vector(client: YClient) -> dict[int, int]:
    return document.decode_state_vector(client.doc.get_state())


async def connected(server, note_id: str, **kwargs) -> YClient:
    client = await YClient(server.url, note_id, **kwargs).connect()
    await asyncio.wait_for(client.synced.wait(), 10)
    return client


async def test_two_clients_converge_and_a_late_joiner_gets_everything(server):
    a = await connected(server, "converge")
    b = await connected(server, "converge")
    a.text.insert(0, "hello ")
    b.text.insert(0, "world ")
    await eventually(lambda: str(a.text) == str(b.text) and len(str(a.text)) == 12, what="merge")
    a.doc.get("meta", type=pycrdt.Map)["title"] = "T"
    late = await connected(server, "converge")
    await eventually(lambda: str(late.text) == str(a.text), what="late joiner")
    assert late.doc.get("meta", type=pycrdt.Map).to_py() == {"title": "T"}
    # Compared decoded: yrs encodes a state vector in hash-map order, so equal vectors can
    # differ byte for byte.
    await eventually(
        lambda: vector(late) == vector(a) == vector(b),
        what=lambda: f"equal state vectors: {vector(a)} {vector(b)} {vector(late)}",
    )
    for client in (a, b, late):
        await client.close()


async def test_sender_receives_its_own_update_back(server):
    a = await connected(server, "echo")
    a.text.insert(0, "x")
    await eventually(lambda: any(isinstance(m, protocol.SyncUpdate) for m in a.received))
    await a.close()


async def test_twenty_connections_at_once_load_the_note_once(server):
    clients = [YClient(server.url, "crowd") for _ in range(20)]
    await asyncio.gather(*(client.connect() for client in clients))
    await asyncio.wait_for(asyncio.gather(*(c.synced.wait() for c in clients)), 10)
    assert health(server)["loads"] == 1
    clients[0].text.insert(0, "to all")
    await eventually(lambda: all(str(c.text) == "to all" for c in clients), what="fan-out")
    for client in clients:
        await client.close()
    await eventually(lambda: health(server)["rooms"] == 0, what="room unloaded")
    assert health(server)["stored_updates"] >= 1


async def test_content_survives_a_restart(tmp_path):
    env = {"COSCRIBE_SQLITE_PATH": str(tmp_path / "r.sqlite")}
    with LiveServer(env, tmp_path) as server:
        a = await connected(server, "durable")
        a.text.insert(0, "kept across restarts")
        await eventually(lambda: health(server)["stored_updates"] >= 1, what="stored")
        await a.close()
    with LiveServer(env, tmp_path) as server:
        b = await connected(server, "durable")
        assert str(b.text) == "kept across restarts"
        await b.close()


async def test_awareness_is_shared_and_removed_on_disconnect(server):
    a = await connected(server, "presence")
    b = await connected(server, "presence")
    await a.set_awareness({"user": {"name": "Ann"}})
    await eventually(lambda: a.doc.client_id in b.awareness, what="awareness arrives")
    c = await connected(server, "presence")
    await eventually(lambda: a.doc.client_id in c.awareness, what="newcomer sees Ann")
    await a.close()
    await eventually(lambda: a.doc.client_id not in b.awareness, timeout=5, what="removal")
    await b.send(protocol.query_awareness())
    for client in (b, c):
        await client.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x00\x07\x00", closecodes.INVALID_PAYLOAD),  # unknown sync type
        (b"", closecodes.INVALID_PAYLOAD),
        (b"\x00\x02\x03\x05\xff\xff", closecodes.INVALID_PAYLOAD),  # update that does not decode
        ("text frame", closecodes.UNSUPPORTED_DATA),
    ],
)
async def test_a_bad_frame_closes_only_its_connection(server, frame, code):
    good = await connected(server, "sturdy")
    bad = await connected(server, "sturdy")
    await bad.send(frame)
    assert await bad.wait_closed() == code
    good.text.insert(0, "still here")
    other = await connected(server, "sturdy")
    await eventually(lambda: str(other.text) == "still here", what="room carries on")
    await good.close()
    await other.close()


async def test_oversize_frame_closes_with_1009(tmp_path):
    env = {"COSCRIBE_SQLITE_PATH": str(tmp_path / "s.sqlite"), "COSCRIBE_MAX_FRAME_BYTES": "1000"}
    with LiveServer(env, tmp_path) as server:
        client = await connected(server, "big")
        doc = pycrdt.Doc()
        doc.get("content", type=pycrdt.Text).insert(0, "x" * 5000)
        await client.send(protocol.sync_update(doc.get_update()))
        assert await client.wait_closed() == closecodes.TOO_BIG


async def test_invalid_note_id_is_refused(server):
    async with websockets.connect(f"{server.url.replace('http', 'ws')}/ws/bad%20id!") as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == closecodes.BAD_NOTE_ID


async def test_unknown_notes_are_refused_when_creation_is_off(tmp_path):
    env = {
        "COSCRIBE_SQLITE_PATH": str(tmp_path / "n.sqlite"),
        "COSCRIBE_CREATE_MISSING_NOTES": "false",
    }
    with LiveServer(env, tmp_path) as server:
        client = await YClient(server.url, "nope").connect()
        assert await client.wait_closed() == closecodes.NOTE_NOT_FOUND


async def test_awareness_states_time_out_unless_renewed(tmp_path):
    env = {"COSCRIBE_SQLITE_PATH": str(tmp_path / "a.sqlite"), "COSCRIBE_AWARENESS_TIMEOUT_S": "1"}
    with LiveServer(env, tmp_path) as server:
        quiet = await connected(server, "timeout")
        watcher = await connected(server, "timeout")
        await quiet.set_awareness({"user": "gone quiet"})
        await eventually(lambda: quiet.doc.client_id in watcher.awareness, what="state")
        # quiet stays connected but never renews its state: the server removes it.
        await eventually(lambda: quiet.doc.client_id not in watcher.awareness, timeout=5)
        await quiet.close()
        await watcher.close()


async def test_a_burst_goes_out_merged_and_in_order(server):
    """Updates that arrive together are broadcast as fewer, merged frames; an awareness
    message sent after them still arrives after all of them."""
    reader = await connected(server, "burst")
    writer_doc = pycrdt.Doc()
    text = writer_doc.get("content", type=pycrdt.Text)
    frames = []
    for n in range(300):
        before = writer_doc.get_state()
        text.insert(len(text), f"{n % 10}")
        frames.append(protocol.sync_update(writer_doc.get_update(before)))
    entry = protocol.AwarenessEntry(writer_doc.client_id, 1, {"user": "w"})
    frames.append(protocol.awareness(protocol.awareness_payload([entry])))
    async with websockets.connect(f"{server.url.replace('http', 'ws', 1)}/ws/burst") as ws:
        await ws.recv()  # the server's sync step 1: the room has us
        for frame in frames:  # queued back to back, without waiting for anything between
            await ws.send(frame)
        await eventually(lambda: writer_doc.client_id in reader.awareness, what="awareness")
    received = list(reader.received)
    at = next(
        i
        for i, m in enumerate(received)
        if isinstance(m, protocol.AwarenessUpdate)
        and any(e.client_id == writer_doc.client_id for e in m.entries)
    )
    replay = pycrdt.Doc()
    for message in received[:at]:
        if isinstance(message, protocol.SyncStep2 | protocol.SyncUpdate):
            replay.apply_update(message.update)
    assert str(replay.get("content", type=pycrdt.Text)) == str(text)
    updates = sum(isinstance(m, protocol.SyncUpdate) for m in received[:at])
    assert updates < 300, f"{updates} frames for 300 updates sent together: none merged"
    await reader.close()
