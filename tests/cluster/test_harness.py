"""The cluster tests' own machinery, on its own: instances start over one schema, the proxy
forwards, retargets, cuts and delays, a private Redis stops and restarts empty, and cleaning up
a prefix leaves every other key alone."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis

from tests.cluster.harness import (
    TcpProxy,
    alive,
    api,
    create_note,
    delete_keys,
    health,
    new_prefix,
    redis_problem,
    stored_text,
    ws_url,
)


async def echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def roundtrip(port: int, payload: bytes) -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(payload)
    await writer.drain()
    data = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
    elapsed = time.monotonic() - started
    writer.close()
    return data, elapsed


async def test_proxy_forwards_retargets_cuts_and_delays():
    first, first_port = await echo_server()
    second, second_port = await echo_server()
    proxy = await TcpProxy(first_port).start()
    try:
        assert (await roundtrip(proxy.port, b"hello"))[0] == b"hello"
        # A connection that stays open across the retarget keeps its old target.
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        while proxy.accepted < 2:  # the proxy has made its own connection to the target
            await asyncio.sleep(0.01)
        first.close()  # the old target accepts nobody new
        proxy.retarget(second_port)
        assert (await roundtrip(proxy.port, b"again"))[0] == b"again"
        writer.write(b"kept")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"kept"
        proxy.drop_all()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # cut
        writer.close()
        proxy.delay = 0.3
        data, elapsed = await roundtrip(proxy.port, b"slow")
        assert data == b"slow" and 0.5 <= elapsed < 3  # 0.3 s each way
    finally:
        await proxy.stop()
        second.close()


@pytest.mark.redis
def test_private_redis_stops_and_restarts_empty(private_redis):
    client = private_redis.client()
    client.set("kept?", "no")
    pid = private_redis.pid
    private_redis.stop()
    assert not private_redis.running()
    assert redis_problem(private_redis.url) is not None
    private_redis.start()
    assert private_redis.pid != pid and private_redis.starts == 2
    assert client.get("kept?") is None  # nothing saved: restarted empty
    client.close()


@pytest.mark.redis
def test_deleting_a_prefix_leaves_other_keys(shared_redis_url):
    mine, other = new_prefix(), new_prefix()
    client = redis.Redis.from_url(shared_redis_url)
    try:
        for n in range(1200):
            client.set(f"{mine}k{n}", n)
        client.set(f"{other}k", 1)
        assert delete_keys(shared_redis_url, mine) == 1200
        assert list(client.scan_iter(match=f"{mine}*")) == []
        assert client.get(f"{other}k") == b"1"
    finally:
        client.delete(f"{other}k")
        client.close()


@pytest.mark.postgres
@pytest.mark.redis
async def test_instances_share_a_schema_and_the_proxy_moves_clients(make_cluster, spawn):
    cluster = make_cluster()
    a, b = await cluster.start(2)
    assert cluster.env["REDIS_URL"] and cluster.env["COSCRIBE_REDIS_PREFIX"] == cluster.prefix
    note = f"h-{uuid.uuid4().hex[:8]}"
    await create_note(a, note, text="stored")
    assert await stored_text(b, note) == "stored"  # one schema
    assert (await health(a)).get("status") is not None

    proxy = await TcpProxy(a.port).start()
    try:
        response = await api(a, "GET", "/health")
        assert response.status_code == 200
        [peer] = await spawn(1)
        await peer.connect(ws_url(proxy.port), note, 7, maxBackoffTime=300)
        assert await peer.text() == "stored"
        a.kill()
        assert not alive(a)
        proxy.retarget(b.port)
        await peer.call("waitStatus", connected=False, timeout=10)
        await peer.call("waitSynced", timeout=15)  # reconnected, through the proxy, to b
        assert (await peer.call("status"))["connected"]
        assert proxy.accepted >= 2
        await peer.call("insertText", index=6, text=" and more")
        await asyncio.sleep(0)  # then b has it: read it there
        for _ in range(100):
            if await stored_text(b, note) == "stored and more":
                break
            await asyncio.sleep(0.05)
        assert await stored_text(b, note) == "stored and more"
    finally:
        await proxy.stop()
