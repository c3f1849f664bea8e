"""Nothing is lost: graceful shutdown stores everything, and a crash loses nothing that the
clients still hold (they resync on reconnect)."""

import asyncio
import base64
import os
import signal
import socket

import httpx
import pycrdt

from server import closecodes
from tests.live_server import LiveServer
from tests.node_peer import NodePeer, require_node
from tests.yclient import YClient, eventually


async def test_sigterm_closes_sockets_with_1001_and_stores_everything(tmp_path):
    env = {"COSCRIBE_SQLITE_PATH": str(tmp_path / "t.sqlite"), "COSCRIBE_FLUSH_WINDOW_MS": "2000"}
    server = LiveServer(env, tmp_path).start()
    try:
        a = await YClient(server.url, "graceful").connect()
        b = await YClient(server.url, "graceful").connect()
        await asyncio.wait_for(asyncio.gather(a.synced.wait(), b.synced.wait()), 10)
        a.text.insert(0, "written just before shutdown")
        await eventually(lambda: str(b.text) == "written just before shutdown")
        # The 2 s flush window has not passed: only the shutdown flush can store this.
        server.signal(signal.SIGTERM)
        assert await a.wait_closed() == closecodes.GOING_AWAY
        assert await b.wait_closed() == closecodes.GOING_AWAY
        # uvicorn re-raises the signal once shut down, so parents see how it ended.
        assert server.wait() in (0, -signal.SIGTERM)
    finally:
        server.stop()
    assert "every update stored" in server.log()
    with LiveServer(env, tmp_path) as again:
        c = await YClient(again.url, "graceful").connect()
        await asyncio.wait_for(c.synced.wait(), 10)
        assert str(c.text) == "written just before shutdown"
        await c.close()


async def test_sigkill_while_clients_write_loses_no_edit(tmp_path):
    require_node()
    env = {"COSCRIBE_SQLITE_PATH": str(tmp_path / "k.sqlite")}
    server = LiveServer(env, tmp_path).start()
    url = f"ws://127.0.0.1:{server.port}/ws"
    peers = [await NodePeer.spawn(f"writer{i}") for i in range(3)]
    try:
        for peer in peers:
            await peer.call("connect", url=url, room="crash", maxBackoffTime=300)

        async def write(peer: NodePeer, index: int, count: int, tag: str) -> list[str]:
            words = []
            for n in range(count):
                word = f"<{tag}{index}.{n}>"
                await peer.call("insertText", index=0, text=word)
                words.append(word)
            return words

        # Writes before, during and after the crash; the kill lands while they are in flight.
        tasks = [asyncio.ensure_future(write(p, i, 60, "a")) for i, p in enumerate(peers)]
        await asyncio.sleep(0.05)  # let the writes get going before the crash
        server.kill()
        words = [w for ws in await asyncio.gather(*tasks) for w in ws]
        words += [w for i, p in enumerate(peers) for w in await write(p, i, 5, "offline")]
        server = LiveServer(env, tmp_path, port=server.port).start()
        for peer in peers:
            await peer.call("waitSynced", timeout=20)
        words += [w for i, p in enumerate(peers) for w in await write(p, i, 5, "after")]
        texts = []
        for peer in peers:
            await eventually_text(peer, lambda t: all(w in t for w in words))
            texts.append(await peer.text())
        assert texts[0] == texts[1] == texts[2]
        # Everything is stored: a graceful restart and a fresh client see the same text.
        server.stop()
        server = LiveServer(env, tmp_path, port=server.port).start()
        fresh = await YClient(server.url, "crash").connect()
        await asyncio.wait_for(fresh.synced.wait(), 10)
        await eventually(lambda: str(fresh.text) == texts[0], what="stored text")
        assert all(word in str(fresh.text) for word in words)
        assert len(words) == 3 * 70
        await fresh.close()
    finally:
        for peer in peers:
            await peer.close()
        server.stop()


async def eventually_text(peer: NodePeer, check, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        text = await peer.text()
        if check(text):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"peer text never satisfied the check: {text[:200]!r}...")
        await asyncio.sleep(0.05)


def never_reading_client(port: int, note_id: str) -> socket.socket:
    """A websocket handshake on a socket with a tiny receive buffer, then never a read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws/{note_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


async def test_a_client_that_never_reads_is_dropped_and_others_keep_up(tmp_path):
    env = {
        "COSCRIBE_SQLITE_PATH": str(tmp_path / "b.sqlite"),
        "COSCRIBE_SEND_QUEUE_BYTES": str(2 << 20),
    }
    with LiveServer(env, tmp_path) as server:
        writer = await YClient(server.url, "flood").connect()
        reader = await YClient(server.url, "flood").connect()
        stalled = never_reading_client(server.port, "flood")
        await asyncio.wait_for(asyncio.gather(writer.synced.wait(), reader.synced.wait()), 10)
        # 1000 updates of 20 kB each (20 MB in all, more than the socket buffers of the
        # stalled client hold); each replaces the last, so the documents stay small.
        chunk = "x" * 20_000
        loop = asyncio.get_running_loop()
        for n in range(1000):
            writer.doc.get("blob", type=pycrdt.Map)["v"] = f"{n:04d}{chunk}"
            if n % 10 == 0:
                await asyncio.sleep(0.005)
        sent_at = loop.time()
        blob = reader.doc.get("blob", type=pycrdt.Map)
        await eventually(lambda: blob.get("v", "").startswith("0999"), timeout=30, what="reader")
        lag = loop.time() - sent_at
        assert lag < 10, f"the good reader lagged {lag:.1f}s behind"
        await eventually(
            lambda: httpx.get(f"{server.url}/health").json()["connections"] == 2,
            what="stalled client dropped",
        )
        for client in (writer, reader):
            await client.close()
        stalled.close()
    assert "not reading" in server.log()
    assert "flood" in server.log()
