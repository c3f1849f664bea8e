"""The Node peer harness (tests/node/peer.mjs driven by tests/node_peer.py), proven against the
reference y-websocket server (@y/websocket-server), so that a failure in a coscribe interop test
points at coscribe and not at the harness.

The reference server takes the room from the URL path: serverUrl ws://127.0.0.1:PORT and room
`r` connect to /r (coscribe: serverUrl ws://HOST:PORT/ws, room = note id).
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import pycrdt
import pytest

from tests.node_peer import NodePeer, NodePeerError, ReferenceServer, reference_server, require_node

TIMEOUT = 5


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    """One reference server for the module; each test uses its own room."""
    require_node()
    with reference_server() as running:
        yield running


@pytest.fixture
def room() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def peers() -> AsyncIterator[list[NodePeer]]:
    """Three started (not connected) peers, closed after the test; fails on peer exceptions."""
    require_node()
    async with AsyncExitStack() as stack:
        started = await asyncio.gather(*(NodePeer.start(name) for name in "abc"))
        for peer in started:
            stack.push_async_callback(peer.close)
        yield list(started)
        for peer in started:
            assert peer.errors() == [], f"{peer.name}: {peer.errors()}\n{peer.stderr}"


async def connect_all(peers: list[NodePeer], server: ReferenceServer, room: str) -> None:
    await asyncio.gather(
        *(peer.connect(server.url, room, client_id) for client_id, peer in enumerate(peers, 1))
    )


async def converged_text(peers: list[NodePeer], length: int, name: str = "content") -> str:
    """Wait until every peer holds the same text of the given length; return it."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        texts = await asyncio.gather(*(peer.text(name) for peer in peers))
        if len(set(texts)) == 1 and len(texts[0]) == length:
            return texts[0]
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"texts did not converge: {texts}")
        await asyncio.sleep(0.02)


async def test_text_converges_across_three_peers(server, room, peers):
    a, b, c = peers
    await connect_all(peers, server, room)
    assert (await a.call("status"))["synced"] is True

    await a.call("insertText", index=0, text="hello")
    await b.call("waitText", text="hello", timeout=TIMEOUT)
    await b.call("insertText", index=5, text=" world")
    await c.call("waitText", text="hello world", timeout=TIMEOUT)
    await c.call("deleteText", index=0, length=1)
    await c.call("insertText", index=0, text="H")
    await a.call("waitText", text="Hello world", timeout=TIMEOUT)

    # Concurrent edits at the same position: all peers agree on one order.
    await asyncio.gather(
        a.call("insertText", index=0, text="[a]"),
        b.call("insertText", index=0, text="[b]"),
    )
    final = await converged_text(peers, len("Hello world") + 6)
    assert final.endswith("Hello world")
    assert {final[:3], final[3:6]} == {"[a]", "[b]"}

    # A late joiner gets everything from the server.
    async with NodePeer.start("late") as late:
        await late.connect(server.url, room)
        assert await late.text() == final


async def test_text_indexes_are_utf16_units(server, room, peers):
    a, b, _ = peers
    await connect_all(peers[:2], server, room)
    await a.call("insertText", index=0, text="a😀b")  # the emoji is two UTF-16 units
    await a.call("insertText", index=3, text="-")
    await b.call("waitText", text="a😀-b", timeout=TIMEOUT)


async def test_map_and_xml_fragment_sync(server, room, peers):
    a, b, c = peers
    await connect_all(peers, server, room)

    await a.call("setMap", name="meta", key="title", value="Notes")
    await b.call("setMap", name="meta", key="tags", value=["x", {"n": 1}])
    expected = {"title": "Notes", "tags": ["x", {"n": 1}]}
    for peer in peers:
        assert (await peer.call("waitMap", name="meta", value=expected, timeout=TIMEOUT))[
            "value"
        ] == expected
    await c.call("deleteMap", name="meta", key="title")
    await a.call("waitMap", name="meta", value={"tags": ["x", {"n": 1}]}, timeout=TIMEOUT)

    await a.call("xmlInsert", name="prosemirror", index=0, nodeName="paragraph", text="one")
    await b.call("waitXml", name="prosemirror", xml="<paragraph>one</paragraph>", timeout=TIMEOUT)
    await b.call("xmlInsert", name="prosemirror", nodeName="heading", text="two")  # appends
    want = "<paragraph>one</paragraph><heading>two</heading>"
    await c.call("waitXml", name="prosemirror", xml=want, timeout=TIMEOUT)
    assert (await a.call("waitXml", name="prosemirror", xml=want, timeout=TIMEOUT))["xml"] == want


async def test_awareness_appears_and_disappears_when_a_peer_leaves(server, room, peers):
    a, b, c = peers
    await connect_all(peers, server, room)

    await a.call("setAwareness", state={"user": "alice", "cursor": 3})
    await c.call("setAwareness", state={"user": "carol"})
    states = (await b.call("waitAwareness", present=[1, 2, 3], timeout=TIMEOUT))["states"]
    assert states["1"] == {"user": "alice", "cursor": 3}
    assert states["3"] == {"user": "carol"}
    assert states["2"] == {}  # a y-protocols Awareness starts with the local state {}

    # A clean close sends our null state; the server also drops the ids the connection owned.
    await a.close()
    await b.call("waitAwareness", present=[2, 3], absent=[1], timeout=TIMEOUT)

    # An abrupt exit (no close handshake): the server notices the dropped socket.
    await c.kill()
    await b.call("waitAwareness", present=[2], absent=[3], timeout=TIMEOUT)


async def test_offline_edit_merges_on_reconnect(server, room, peers):
    a, b, _ = peers
    await connect_all(peers[:2], server, room)
    await a.call("insertText", index=0, text="base")
    await b.call("waitText", text="base", timeout=TIMEOUT)

    status = await b.call("disconnect")
    assert status["connected"] is False
    assert status["synced"] is False
    await b.wait_event("status", lambda event: event["status"] == "disconnected")

    await b.call("insertText", index=4, text=" offline")
    await b.call("setMap", name="meta", key="by", value="b")
    await a.call("insertText", index=0, text="online ")
    await asyncio.sleep(0.1)  # give a misrouted update time to show up where it must not
    assert await a.text() == "online base"
    assert await b.text() == "base offline"

    status = await b.call("reconnect", timeout=TIMEOUT)
    assert status["connected"] is True
    assert status["synced"] is True
    assert await converged_text([a, b], len("online base offline")) == "online base offline"
    await a.call("waitMap", name="meta", value={"by": "b"}, timeout=TIMEOUT)


async def test_state_vector_and_update_are_standard_yjs(server, room, peers):
    a, *_ = peers
    await a.connect(server.url, room, client_id=42)
    await a.call("insertText", index=0, text="héllo")
    update = base64.b64decode((await a.call("encodeState"))["update"])
    doc = pycrdt.Doc()
    doc.apply_update(update)
    assert str(doc.get("content", type=pycrdt.Text)) == "héllo"
    state_vector = base64.b64decode((await a.call("stateVector"))["sv"])
    assert state_vector == doc.get_state()


async def test_errors_are_replies_not_crashes(peers):
    a, *_ = peers
    with pytest.raises(NodePeerError, match="unknown command"):
        await a.call("noSuchCommand")
    with pytest.raises(NodePeerError, match="not connected"):
        await a.call("disconnect")
    with pytest.raises(NodePeerError, match="missing argument 'name'"):
        await a.call("getMap")
    await a.call("insertText", index=0, text="x")
    with pytest.raises(NodePeerError, match=r'is "x", want "y"'):
        await a.call("waitText", text="y", timeout=0.1)
    with pytest.raises(NodePeerError, match="clientId must be set before any edit"):
        await a.call("connect", url="ws://127.0.0.1:9", room="r", clientId=5)
    assert (await a.call("getText"))["text"] == "x"  # still alive and answering


async def test_connect_times_out_without_a_server(peers):
    a, *_ = peers
    with pytest.raises(NodePeerError, match="not synced"):
        # Port 9 (discard) on localhost refuses connections; the provider keeps retrying.
        await a.call("connect", url="ws://127.0.0.1:9", room="r", timeout=0.5)
    status = await a.call("status")
    assert status["synced"] is False
    assert status["shouldConnect"] is True


async def test_awareness_after_reconnect_needs_a_fresh_clock(server, room, peers):
    """Stock y-websocket v3 behaviour, pinned here so nobody mistakes it for a server bug.

    disconnect() sends our state as null with the *same* clock; reconnect re-sends the state with
    that clock again, which Yjs awareness rules reject (clock must grow), so the others only see
    us again at the 15 s renewal. Setting the state after reconnecting bumps the clock at once.
    """
    a, b, _ = peers
    await connect_all(peers[:2], server, room)
    await a.call("setAwareness", state={"user": "alice"})
    await b.call("waitAwareness", present=[1], timeout=TIMEOUT)
    await a.call("disconnect")
    await b.call("waitAwareness", absent=[1], timeout=TIMEOUT)
    await a.call("reconnect", timeout=TIMEOUT)
    with pytest.raises(NodePeerError, match="timed out"):
        await b.call("waitAwareness", present=[1], timeout=0.5)
    await a.call("setAwareness", state={"user": "alice"})
    await b.call("waitAwareness", present=[1], timeout=TIMEOUT)
