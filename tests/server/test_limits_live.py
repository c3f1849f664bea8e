"""Awareness floods, slow bodies and connection floods against a real server process: each is
bounded, refused or closed as documented, while a bystander stays connected, a newcomer gets
in at once, and the process stays alive."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import httpx
import pytest
import websockets

from crdt import protocol
from crdt.awareness import AwarenessLimits
from crdt.protocol import AwarenessEntry, AwarenessUpdate
from server import closecodes
from tests.live_server import LiveServer
from tests.node_peer import NodePeer, require_node
from tests.yclient import YClient, eventually

WELCOME_BOUND = AwarenessLimits().max_frame_bytes()  # the default limits


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"COSCRIBE_SQLITE_PATH": str(tmp_path / "notes.sqlite"), **extra}


async def connected(server: LiveServer, note_id: str, **kwargs) -> YClient:
    client = await YClient(server.url, note_id, **kwargs).connect()
    await asyncio.wait_for(client.synced.wait(), 10)
    return client


def flood(first_id: int, count: int, state_bytes: int, clock: int = 1) -> bytes:
    """An awareness message announcing `count` ids, each with a state of about state_bytes."""
    pad = "x" * max(state_bytes - len('{"user":{"name":""}}'), 0)
    entries = [
        AwarenessEntry(client_id, clock, {"user": {"name": pad}})
        for client_id in range(first_id, first_id + count)
    ]
    return protocol.awareness(protocol.awareness_payload(entries))


def alive(server: LiveServer) -> bool:
    return server.process is not None and server.process.poll() is None


# --- awareness ---------------------------------------------------------------------------------


async def test_an_awareness_flood_is_bounded_and_a_newcomer_gets_in_at_once(tmp_path):
    with LiveServer(env(tmp_path), tmp_path) as server:
        bystander = await connected(server, "crowd", client_id=1)
        await bystander.set_awareness({"user": {"name": "Ann"}})
        await eventually(lambda: 1 in bystander.awareness, what="the bystander's own echo")

        # Twenty sockets, each announcing 50 ids of 8000-byte states in one message: 8 MB of
        # states, about 60,000 times what a browser tab announces.
        attackers = [await connected(server, "crowd") for _ in range(20)]
        for index, attacker in enumerate(attackers):
            await attacker.send(flood(1000 + 100 * index, 50, 8000))
        # Each keeps at most 8 ids, and the note at most 512 KiB in all; the rest is dropped.
        await eventually(lambda: len(bystander.awareness) > 50, what="the attackers' states arrive")
        for attacker in attackers:
            await attacker.send(protocol.query_awareness())  # a round trip: all was handled
        await eventually(lambda: all(a.awareness for a in attackers), what="answers")
        held = len(attackers[-1].awareness)
        states = attackers[-1].awareness.values()
        size = sum(len(json.dumps(state, separators=(",", ":"))) for state in states)
        assert held <= 1 + 20 * 8
        assert size <= 512 * 1024
        assert all(attacker.close_code is None for attacker in attackers), "dropped, not closed"
        assert bystander.close_code is None

        # A newcomer (pycrdt) gets in within a second, with a bounded welcome.
        started = time.monotonic()
        async with websockets.connect(f"{server.url.replace('http', 'ws')}/ws/crowd") as raw:
            step1 = protocol.decode(await asyncio.wait_for(raw.recv(), 1))
            welcome = await asyncio.wait_for(raw.recv(), 1)
        elapsed = time.monotonic() - started
        assert isinstance(step1, protocol.SyncStep1)
        assert isinstance(protocol.decode(welcome), AwarenessUpdate)
        assert len(welcome) <= WELCOME_BOUND, f"welcome of {len(welcome)} bytes"
        assert elapsed < 1, f"the newcomer waited {elapsed:.2f}s"
        newcomer = await asyncio.wait_for(connected(server, "crowd"), 1)

        # More entries in one message than a note holds: that socket is closed with 1008.
        await attackers[0].send(flood(90_000, 1001, 3))
        assert await attackers[0].wait_closed() == closecodes.POLICY
        assert "1001 awareness entries in one message" in server.log()
        # Its states went with it; the others stay.
        await eventually(lambda: not any(1000 <= cid < 1100 for cid in bystander.awareness))
        assert 1 in bystander.awareness and len(bystander.awareness) > 1

        for attacker in attackers[1:]:
            await attacker.close()
        await eventually(
            lambda: set(bystander.awareness) == {1}, timeout=3, what="every flood state removed"
        )
        assert bystander.close_code is None and newcomer.close_code is None
        assert server.log().count("awareness entries dropped") == 20, "one line per socket"
        await bystander.close()
        await newcomer.close()
        assert alive(server)


async def test_a_real_y_websocket_client_gets_in_during_a_flood(tmp_path):
    require_node()
    with LiveServer(env(tmp_path), tmp_path) as server:
        bystander = await connected(server, "crowd", client_id=1)
        await bystander.set_awareness({"user": {"name": "Ann"}})
        attackers = [await connected(server, "crowd") for _ in range(20)]
        for index, attacker in enumerate(attackers):
            await attacker.send(flood(1000 + 100 * index, 50, 8000))
            await attacker.send(protocol.query_awareness())
        await eventually(lambda: all(a.awareness for a in attackers), what="the flood handled")

        peer = await NodePeer.spawn("newcomer")
        try:
            started = time.monotonic()
            await peer.connect(f"ws://127.0.0.1:{server.port}/ws", "crowd", 7, timeout=5)
            elapsed = time.monotonic() - started
            states = (await peer.call("waitAwareness", present=[1], timeout=5))["states"]
            assert states["1"] == {"user": {"name": "Ann"}}
            assert elapsed < 1, f"y-websocket needed {elapsed:.2f}s to sync"
        finally:
            await peer.close()
        for client in (bystander, *attackers):
            assert client.close_code is None
            await client.close()
        assert alive(server)


async def test_states_of_a_multi_entry_message_go_when_their_sender_leaves(tmp_path):
    with LiveServer(env(tmp_path), tmp_path) as server:
        bystander = await connected(server, "note", client_id=1)
        await bystander.set_awareness({"user": "Ann"}, clock=3)
        sender = await connected(server, "note", client_id=2)
        await sender.send(flood(500, 3, 100))  # three ids, none of them its own
        await eventually(lambda: {500, 501, 502} <= set(bystander.awareness), what="states")

        # It cannot change or remove the bystander's state.
        hijack = [AwarenessEntry(1, 9, {"user": "Eve"}), AwarenessEntry(503, 1, {})]
        await sender.send(protocol.awareness(protocol.awareness_payload(hijack)))
        removal = [AwarenessEntry(1, 10, None)]  # alone: as if it spoke for itself
        await sender.send(protocol.awareness(protocol.awareness_payload(removal)))
        await eventually(lambda: 503 in bystander.awareness, what="the sender's own new id")
        assert bystander.awareness[1] == {"user": "Ann"}

        # Disconnecting takes its states with it at once (not after the 30 s timeout).
        started = time.monotonic()
        await sender.close()
        await eventually(
            lambda: set(bystander.awareness) == {1}, timeout=3, what="the removal broadcast"
        )
        assert time.monotonic() - started < 3
        removals = {
            entry.client_id
            for message in bystander.received
            if isinstance(message, AwarenessUpdate)
            for entry in message.entries
            if entry.state is None
        }
        assert removals == {500, 501, 502, 503}
        assert "owned by another connection" in server.log()

        # An abrupt end (no close handshake) too.
        sender = await connected(server, "note")
        await sender.send(flood(600, 2, 100))
        await eventually(lambda: {600, 601} <= set(bystander.awareness), what="states")
        assert sender.ws is not None
        sender.ws.transport.abort()
        await eventually(lambda: set(bystander.awareness) == {1}, timeout=3, what="removal")
        assert bystander.close_code is None
        await bystander.close()
        assert alive(server)


# --- HTTP --------------------------------------------------------------------------------------


def raw_connection(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    return sock


def read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_one_response(sock: socket.socket) -> bytes:
    """One response with a content-length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


async def test_a_slow_body_gets_408_within_the_limit(tmp_path):
    with LiveServer(env(tmp_path, COSCRIBE_BODY_TIMEOUT_S="1"), tmp_path) as server:
        body = json.dumps({"id": "slow", "title": "slow"}).encode()
        head = (
            b"POST /api/notes HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(body)
        )

        def slow_post() -> tuple[bytes, float]:
            with raw_connection(server.port) as sock:
                sock.sendall(head)
                started = time.monotonic()
                try:
                    for byte in body:  # one byte every 0.2 s: 5 s for the body
                        sock.sendall(bytes((byte,)))
                        time.sleep(0.2)
                except OSError:
                    pass  # closed by the server
                return read_response(sock), time.monotonic() - started

        answer, elapsed = await asyncio.to_thread(slow_post)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert elapsed < 1 + 0.5, f"closed after {elapsed:.2f}s"
        assert "request body of POST /api/notes not complete in 1s" in server.log()

        # Bodies that arrive in time are not affected, nor is the note store.
        async with httpx.AsyncClient(base_url=server.url) as client:
            created = await client.post("/api/notes", json={"id": "fast", "title": "fast"})
            assert created.status_code == 201, created.text
            assert (await client.get("/api/notes/slow")).status_code == 404
        assert "Traceback" not in server.log()
        assert alive(server)


async def test_http_connections_per_address_are_limited(tmp_path):
    limit = 5
    settings = env(tmp_path, COSCRIBE_MAX_HTTP_CONNECTIONS_PER_ADDRESS=str(limit))
    with LiveServer(settings, tmp_path) as server:
        # Websockets leave the HTTP count once upgraded: as many as the limit, and HTTP from
        # the same address still gets through.
        sockets = [await connected(server, "note") for _ in range(limit)]
        async with httpx.AsyncClient(base_url=server.url) as client:
            health = (await client.get("/health")).json()
        assert health["sockets"] == limit

        # `limit` connections holding half a request head each.
        hostile = [raw_connection(server.port) for _ in range(limit)]
        for sock in hostile:
            sock.sendall(b"POST /api/notes HTTP/1.1\r\nhost: x\r\n")

        def refused() -> tuple[bytes, float]:
            started = time.monotonic()
            with raw_connection(server.port) as sock:
                return read_response(sock), time.monotonic() - started

        async def extra_is_refused() -> None:
            answer, elapsed = await asyncio.to_thread(refused)
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
            assert b"retry-after: 1" in answer
            assert elapsed < 0.5, f"refused after {elapsed:.2f}s"

        await extra_is_refused()
        for _ in range(20):
            await extra_is_refused()
        # A websocket from the same address is refused too (it starts as HTTP) ...
        with pytest.raises(websockets.InvalidStatus) as refusal:
            await websockets.connect(f"{server.url.replace('http', 'ws')}/ws/note")
        assert refusal.value.response.status_code == 503
        # ... while another address is not affected, nor are the open websockets.
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=server.url, transport=transport) as other:
            assert (await other.get("/health")).status_code == 200
        assert all(client.close_code is None for client in sockets)
        assert server.log().count("refusing more with 503") == 1, "one line per 10 s"

        for sock in hostile:
            sock.close()

        async def health_from_here() -> bool:
            try:
                async with httpx.AsyncClient(base_url=server.url) as client:
                    return (await client.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        deadline = time.monotonic() + 5
        while not await health_from_here():
            assert time.monotonic() < deadline, "/health still refused after the flood"
            await asyncio.sleep(0.05)
        late = await connected(server, "note")
        await late.set_awareness({"user": "late"})
        await eventually(lambda: late.doc.client_id in sockets[0].awareness, what="the late one")

        # Kept-alive connections count while they are open, and not after.
        kept = [raw_connection(server.port) for _ in range(limit)]
        for sock in kept:
            sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            assert read_one_response(sock).startswith(b"HTTP/1.1 200 ")
        await extra_is_refused()
        for sock in kept:
            sock.close()
        assert await health_from_here()
        for client in (*sockets, late):
            await client.close()
        assert alive(server)
