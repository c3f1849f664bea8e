"""Real browser-grade clients against a real server: stock Node `yjs` + `y-websocket` peers
(tests/node/peer.mjs) talk to a `coscribe serve` subprocess on SQLite.

A WebsocketProvider with serverUrl ws://HOST:PORT/ws and room = note id connects to
/ws/{note_id}. Text indexes sent to Node peers are UTF-16 units; pycrdt (YClient) counts UTF-8
bytes. Every wait has a timeout; nothing sleeps blindly.
"""

from __future__ import annotations

import asyncio
import base64
import random
import signal
import string
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pycrdt
import pytest

from crdt.protocol import AwarenessUpdate, decode_state_vector
from tests.live_server import LiveServer
from tests.node_peer import NodePeer, require_node
from tests.yclient import YClient, eventually

TIMEOUT = 5

Spawn = Callable[[int], Awaitable[list[NodePeer]]]


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"COSCRIBE_SQLITE_PATH": str(tmp_path / "notes.sqlite")}


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[LiveServer]:
    require_node()
    with LiveServer(env, tmp_path) as live:
        yield live


@pytest.fixture
def note() -> str:
    return f"note-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def spawn() -> AsyncIterator[Spawn]:
    """spawn(n) -> n started (not connected) Node peers; all closed after the test, which
    fails if any of them reported an uncaught exception."""
    require_node()
    started: list[NodePeer] = []

    async def start(count: int) -> list[NodePeer]:
        first = len(started)
        peers = await asyncio.gather(
            *(NodePeer.start(f"peer{first + index}") for index in range(count))
        )
        started.extend(peers)
        return list(peers)

    yield start
    await asyncio.gather(*(peer.close() for peer in started))
    for peer in started:
        assert peer.errors() == [], f"{peer.name}: {peer.errors()}\n{peer.stderr}"


def ws_url(server: LiveServer) -> str:
    """The provider's serverUrl; the room (note id) is appended by y-websocket."""
    return f"ws://127.0.0.1:{server.port}/ws"


async def health(server: LiveServer) -> dict:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{server.url}/health")).json()


async def eventually_health(
    server: LiveServer, check: Callable[[dict], bool], what: str, timeout: float = TIMEOUT
) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        current = await health(server)
        if check(current):
            return current
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}: /health {current}")
        await asyncio.sleep(0.05)


async def connect_all(
    peers: list[NodePeer], server: LiveServer, note: str, first_id: int = 1, **args
) -> None:
    await asyncio.gather(
        *(
            peer.connect(ws_url(server), note, first_id + index, **args)
            for index, peer in enumerate(peers)
        )
    )


async def converged_text(
    peers: list[NodePeer], length: int | None = None, timeout: float = TIMEOUT
) -> str:
    """Wait until every peer holds the same text (of `length`, if given); return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        texts = await asyncio.gather(*(peer.text() for peer in peers))
        if len(set(texts)) == 1 and (length is None or len(texts[0]) == length):
            return texts[0]
        if loop.time() > deadline:
            pytest.fail(f"texts did not converge within {timeout}s: {texts}")
        await asyncio.sleep(0.02)


async def state_vector(peer: NodePeer) -> tuple[str, dict[int, int]]:
    """The peer's encoded state vector (base64) and the same decoded as {client: clock}."""
    encoded = (await peer.call("stateVector"))["sv"]
    return encoded, decode_state_vector(base64.b64decode(encoded))


async def merged_doc(peers: list[NodePeer]) -> pycrdt.Doc:
    """A pycrdt Doc holding the union of every peer's state: the state they must converge to."""
    doc = pycrdt.Doc()
    for peer in peers:
        doc.apply_update(base64.b64decode((await peer.call("encodeState"))["update"]))
    return doc


async def yclient(server: LiveServer, note: str, **kwargs) -> YClient:
    client = await YClient(server.url, note, **kwargs).connect()
    await asyncio.wait_for(client.synced.wait(), TIMEOUT)
    return client


# --- text: two peers, late joiners, many peers -----------------------------------------------


async def test_two_clients_converge_on_concurrent_inserts(server, note, spawn):
    a, b = await spawn(2)
    await connect_all([a, b], server, note)
    assert (await a.call("status"))["synced"] is True

    await a.call("insertText", index=0, text="hello")
    await b.call("waitText", text="hello", timeout=TIMEOUT)

    # Concurrent inserts at different places: one possible result. b appends to what it has
    # (a's insert may reach it first on a slow machine: index 5 would then split "hello").
    await asyncio.gather(
        a.call("insertText", index=0, text="<a>"),
        b.call("insertText", index="end", text="<b>"),
    )
    assert await converged_text([a, b], 11) == "<a>hello<b>"

    # Concurrent inserts at the same place: both peers pick the same order.
    await asyncio.gather(
        a.call("insertText", index=0, text="[1]"),
        b.call("insertText", index=0, text="[2]"),
    )
    final = await converged_text([a, b], 17)
    assert final.endswith("<a>hello<b>")
    assert {final[:3], final[3:6]} == {"[1]", "[2]"}
    assert await state_vector(a) == await state_vector(b)


async def test_late_joiner_gets_the_full_state(server, note, spawn):
    a, live_joiner, cold_joiner = await spawn(3)
    await a.connect(ws_url(server), note, 1)
    await a.call("insertText", index=0, text="first line\nsecond line\n")
    await a.call("deleteText", index=0, length=6)  # "line\nsecond line\n"
    await a.call("insertText", index=0, text="1st ")
    await a.call("setMap", name="meta", key="title", value="Late")
    await a.call("xmlInsert", name="doc", nodeName="p", text="para")
    text = "1st line\nsecond line\n"
    expected_sv = await state_vector(a)

    # Joins the live room: once synced (the server's step2 applied) it has everything at once.
    await live_joiner.connect(ws_url(server), note, 2)
    assert await live_joiner.text() == text
    assert (await live_joiner.call("getMap", name="meta"))["value"] == {"title": "Late"}
    assert (await live_joiner.call("getXml", name="doc"))["xml"] == "<p>para</p>"
    assert await state_vector(live_joiner) == expected_sv

    # Everyone leaves, the room is stored and unloaded; the next one loads it from SQLite.
    await a.close()
    await live_joiner.close()
    await eventually_health(server, lambda h: h["rooms"] == 0, "room unloaded")
    await cold_joiner.connect(ws_url(server), note, 3)
    assert await cold_joiner.text() == text
    assert (await cold_joiner.call("getMap", name="meta"))["value"] == {"title": "Late"}
    assert (await cold_joiner.call("getXml", name="doc"))["xml"] == "<p>para</p>"
    assert await state_vector(cold_joiner) == expected_sv


PEERS = 8
BASE = 400  # characters every peer starts from
OPS_PER_PEER = 12
DELETES_PER_PEER = 4
MAX_DELETE = 3
# No peer can have lost more than this to deletes it has not seen yet. Choosing positions at
# most (known length - DELETE_BUDGET) keeps every index valid however stale our view of a peer's
# text is: inserts only make it longer.
DELETE_BUDGET = PEERS * DELETES_PER_PEER * MAX_DELETE


@pytest.mark.parametrize("seed", [1, 2])
async def test_eight_clients_editing_concurrently_converge(server, note, spawn, seed):
    rng = random.Random(seed)
    peers = await spawn(PEERS)
    await connect_all(peers, server, note)
    base = "".join(rng.choices(string.ascii_lowercase + " ", k=BASE))
    await peers[0].call("insertText", index=0, text=base)
    await asyncio.gather(*(peer.call("waitText", text=base, timeout=TIMEOUT) for peer in peers))

    known = [base] * PEERS  # each peer's text as its last reply showed it
    inserted = [0] * PEERS
    inserted[0] = BASE
    deletes_left = [DELETES_PER_PEER] * PEERS

    async def edit(index: int) -> None:
        peer, room = peers[index], len(known[index]) - DELETE_BUDGET
        if deletes_left[index] and rng.random() < 0.4:
            deletes_left[index] -= 1
            length = rng.randint(1, MAX_DELETE)
            reply = await peer.call(
                "deleteText", index=rng.randint(0, room - length), length=length
            )
        else:
            chunk = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(1, 4)))
            inserted[index] += len(chunk)
            reply = await peer.call("insertText", index=rng.randint(0, room), text=chunk)
        known[index] = reply["text"]

    # Each round every peer makes one edit at once; rounds follow each other without waiting
    # for convergence, so edits interleave with remote updates still in flight.
    for _ in range(OPS_PER_PEER):
        await asyncio.gather(*(edit(index) for index in range(PEERS)))

    # Everyone has at least their own edits: the union of all states is the one true result.
    expected = str((await merged_doc(peers)).get("content", type=pycrdt.Text))
    await asyncio.gather(*(peer.call("waitText", text=expected, timeout=TIMEOUT) for peer in peers))
    want = {client_id: inserted[client_id - 1] for client_id in range(1, PEERS + 1)}
    vectors = await asyncio.gather(*(state_vector(peer) for peer in peers))
    for encoded, decoded in vectors:
        assert decoded == want
        # Yjs writes state vectors sorted by client id (descending): the bytes agree too.
        assert encoded == vectors[0][0]
    assert len(expected) > BASE - DELETE_BUDGET

    # The server's copy is the same: a fresh peer (Python this time) gets exactly that state.
    late = await yclient(server, note)
    assert str(late.text) == expected
    assert decode_state_vector(late.doc.get_state()) == want
    await late.close()


# --- awareness -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "kill"])
async def test_awareness_appears_and_is_removed_when_a_client_leaves(server, note, spawn, how):
    a, b, c = await spawn(3)
    await connect_all([a, b, c], server, note)
    # A y-protocols Awareness starts with the state {} at clock 0, which other Yjs peers
    # ignore (a remote state is only taken with a clock above 0): every peer says who it is.
    names = {1: "Ann", 2: "Bob", 3: "Cy", 4: "Dee"}
    for client_id, peer in zip((1, 2, 3), (a, b, c), strict=True):
        await peer.call("setAwareness", state={"user": names[client_id], "cursor": client_id})
    for peer in (a, b, c):
        states = (await peer.call("waitAwareness", present=[1, 2, 3], timeout=TIMEOUT))["states"]
        assert states["1"] == {"user": "Ann", "cursor": 1}

    # A newcomer gets the current states from the server on joining, and is seen in turn.
    (late,) = await spawn(1)
    await late.connect(ws_url(server), note, 4)
    states = (await late.call("waitAwareness", present=[1, 2, 3], timeout=TIMEOUT))["states"]
    assert states == {
        str(client_id): {"user": names[client_id], "cursor": client_id} for client_id in (1, 2, 3)
    } | {"4": {}}
    await late.call("setAwareness", state={"user": names[4], "cursor": 4})
    for peer in (a, b, c):
        await peer.call("waitAwareness", present=[4], timeout=TIMEOUT)
    # A Python observer sees the raw awareness frames the server broadcasts.
    observer = await yclient(server, note, client_id=99)
    await eventually(lambda: set(observer.awareness) == {1, 2, 3, 4}, TIMEOUT, "observer")

    # close: y-websocket sends a null state and closes cleanly. kill: SIGKILL, no goodbye;
    # the server notices the dropped socket and removes the ids that connection owned.
    await (a.close() if how == "close" else a.kill())
    for peer in (b, c, late):
        states = (await peer.call("waitAwareness", absent=[1], timeout=5))["states"]
        assert set(states) == {"2", "3", "4"}
    await eventually(lambda: 1 not in observer.awareness, TIMEOUT, "removal at the observer")
    # Stock y-websocket clients echo every awareness change they receive (others' states, same
    # clock) as single-entry updates: that must not make them owners of those ids, or a
    # leaving client would take everyone's state with it (they come back at the next clock).
    removed = {
        entry.client_id
        for message in observer.received
        if isinstance(message, AwarenessUpdate)
        for entry in message.entries
        if entry.state is None
    }
    assert removed == {1}
    assert set(observer.awareness) == {2, 3, 4}
    await eventually_health(server, lambda h: h["connections"] == 4, "connection gone")
    await observer.close()


# --- offline edits and restarts --------------------------------------------------------------


async def test_offline_edits_merge_on_reconnect(server, note, spawn):
    a, b, witness = await spawn(3)
    await connect_all([a, b, witness], server, note)
    await a.call("insertText", index=0, text="base")
    await asyncio.gather(
        *(peer.call("waitText", text="base", timeout=TIMEOUT) for peer in (b, witness))
    )

    await b.call("disconnect")
    await b.call("waitStatus", connected=False, timeout=TIMEOUT)
    await b.call("insertText", index=4, text=" offline")
    await b.call("setMap", name="meta", key="by", value="b")
    await a.call("insertText", index=0, text="online ")
    await a.call("setMap", name="meta", key="also", value="a")
    # The witness got a's edit through the server; b, offline, must not have.
    await witness.call("waitText", text="online base", timeout=TIMEOUT)
    assert await b.text() == "base offline"

    status = await b.call("reconnect", timeout=TIMEOUT)
    assert status["connected"] is True
    final = "online base offline"
    assert await converged_text([a, b, witness], len(final)) == final
    both = {"by": "b", "also": "a"}
    for peer in (a, b, witness):
        await peer.call("waitMap", name="meta", value=both, timeout=TIMEOUT)
    assert await state_vector(a) == await state_vector(b) == await state_vector(witness)


async def test_content_survives_a_restart_and_open_clients_reconnect(env, tmp_path, spawn):
    require_node()
    stored_note, open_note = "restart-stored", "restart-open"
    writer, stayer, fresh, fresh_open = await spawn(4)
    first = LiveServer(env, tmp_path).start()
    try:
        # The writer edits one note and leaves: after the restart only storage can bring it back.
        await writer.connect(ws_url(first), stored_note, 1)
        await writer.call("insertText", index=0, text="kept across restarts")
        await writer.call("setMap", name="meta", key="title", value="Durable")
        await writer.call("xmlInsert", name="doc", nodeName="h1", text="Title")
        await writer.close()
        # The stayer keeps its provider open through the restart (short backoff: quick retry).
        await stayer.connect(ws_url(first), open_note, 2, maxBackoffTime=300)
        await stayer.call("insertText", index=0, text="before")
    finally:
        first.stop()  # SIGTERM: connections closed with 1001, everything flushed
    # uvicorn re-raises SIGTERM once shut down: -15 is a graceful exit too.
    assert first.process is not None and first.process.returncode in (0, -signal.SIGTERM)
    assert "every update stored" in first.log()

    await stayer.call("waitStatus", connected=False, timeout=TIMEOUT)
    await stayer.call("insertText", index=6, text=" while down")  # offline edit

    second = LiveServer(env, tmp_path)
    second.port = first.port  # the stayer keeps retrying the old address
    with second:
        await fresh.connect(ws_url(second), stored_note, 3)
        assert await fresh.text() == "kept across restarts"
        assert (await fresh.call("getMap", name="meta"))["value"] == {"title": "Durable"}
        assert (await fresh.call("getXml", name="doc"))["xml"] == "<h1>Title</h1>"

        # y-websocket reconnects by itself and sends what it wrote while the server was down.
        await stayer.call("waitSynced", timeout=TIMEOUT)
        await fresh_open.connect(ws_url(second), open_note, 4)
        await fresh_open.call("waitText", text="before while down", timeout=TIMEOUT)
        await fresh_open.call("insertText", index=0, text="after: ")
        await stayer.call("waitText", text="after: before while down", timeout=TIMEOUT)
        assert await state_vector(stayer) == await state_vector(fresh_open)


# --- shared types ----------------------------------------------------------------------------


async def test_text_map_and_xml_fragment_sync(server, note, spawn):
    a, b, c = await spawn(3)
    await connect_all([a, b, c], server, note)

    await a.call("insertText", index=0, text="a😀b")  # the emoji is two UTF-16 units
    await b.call("waitText", text="a😀b", timeout=TIMEOUT)
    await b.call("insertText", index=3, text="-")
    await b.call("insertText", index=0, text="**", attributes={"bold": True})
    await c.call("waitText", text="**a😀-b", timeout=TIMEOUT)

    await a.call("setMap", name="meta", key="title", value="Notes")
    await b.call("setMap", name="meta", key="tags", value=["x", {"n": 1}])
    value = {"title": "Notes", "tags": ["x", {"n": 1}]}
    for peer in (a, b, c):
        await peer.call("waitMap", name="meta", value=value, timeout=TIMEOUT)
    await c.call("deleteMap", name="meta", key="title")
    await a.call("waitMap", name="meta", value={"tags": ["x", {"n": 1}]}, timeout=TIMEOUT)

    await a.call("xmlInsert", name="prosemirror", index=0, nodeName="paragraph", text="one")
    await b.call("waitXml", name="prosemirror", xml="<paragraph>one</paragraph>", timeout=TIMEOUT)
    await b.call(
        "xmlInsert", name="prosemirror", nodeName="heading", text="two", attributes={"level": "2"}
    )
    await c.call("xmlInsert", name="prosemirror", index=0, nodeName="hr")
    xml = '<hr></hr><paragraph>one</paragraph><heading level="2">two</heading>'
    for peer in (a, b, c):
        await peer.call("waitXml", name="prosemirror", xml=xml, timeout=TIMEOUT)

    # The server holds all three types: a Python peer loading the note sees them typed.
    client = await yclient(server, note)
    assert str(client.text) == "**a😀-b"
    assert client.doc.get("meta", type=pycrdt.Map).to_py() == {"tags": ["x", {"n": 1.0}]}
    assert str(client.doc.get("prosemirror", type=pycrdt.XmlFragment)) == xml
    assert (await a.call("toJSON"))["value"] == (await c.call("toJSON"))["value"]
    await client.close()


# --- Python and Node together ----------------------------------------------------------------


async def test_python_and_node_peers_edit_the_same_note(server, note, spawn):
    (node,) = await spawn(1)
    await node.connect(ws_url(server), note, 7)
    py = await yclient(server, note)  # pycrdt's own random (53-bit) client id

    await node.call("insertText", index=0, text="héllo 😀 world")
    await eventually(lambda: str(py.text) == "héllo 😀 world", TIMEOUT, "node -> python")

    # pycrdt indexes UTF-8 bytes: after "héllo 😀" is byte 11, UTF-16 unit 9.
    prefix = "héllo 😀"
    py.text.insert(len(prefix.encode()), " from python")
    await node.call("waitText", text="héllo 😀 from python world", timeout=TIMEOUT)

    # Concurrent edits from both sides: at the same spot, and python also at the end.
    py.text.insert(0, "[py]")
    py.text.insert(len(py.text), "!")  # len() is in bytes too: the end
    py.doc.get("meta", type=pycrdt.Map)["from"] = "python"
    await node.call("insertText", index=0, text="[js]")
    await node.call("setMap", name="meta", key="by", value="node")

    # The union of both states is what both must end with.
    union = pycrdt.Doc()
    union.apply_update(py.doc.get_update())
    union.apply_update(base64.b64decode((await node.call("encodeState"))["update"]))
    text = str(union.get("content", type=pycrdt.Text))
    assert text.endswith("héllo 😀 from python world!")
    assert {text[:4], text[4:8]} == {"[py]", "[js]"}
    meta = {"from": "python", "by": "node"}
    await node.call("waitText", text=text, timeout=TIMEOUT)
    await node.call("waitMap", name="meta", value=meta, timeout=TIMEOUT)
    await eventually(lambda: str(py.text) == text, TIMEOUT, "text at python")
    await eventually(
        lambda: py.doc.get("meta", type=pycrdt.Map).to_py() == meta, TIMEOUT, "map at python"
    )
    _, node_sv = await state_vector(node)
    assert decode_state_vector(py.doc.get_state()) == node_sv
    assert set(node_sv) == {7, py.doc.client_id}
    await py.close()
