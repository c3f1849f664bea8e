"""An instance killed (SIGKILL) while its clients type: a TCP proxy in front plays the load
balancer and sends new connections to another instance; the y-websocket clients reconnect by
themselves, and nothing anyone typed is lost, live or stored."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.cluster.harness import (
    HEARTBEAT_S,
    TcpProxy,
    Typist,
    alive,
    converge,
    create_note,
    eventually,
    served_state_vector,
    state_vector,
    stored_text,
    ws_url,
)
from tests.live_server import LiveServer
from tests.node_peer import NodePeerError

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

INTERVAL_S = 0.1  # between one client's words


async def test_clients_of_a_killed_instance_move_on_and_lose_nothing(make_cluster, spawn, tmp_path):
    cluster = make_cluster()
    a, b, c = await cluster.start(3)
    note = f"kill-{uuid.uuid4().hex[:8]}"
    await create_note(a, note)
    proxy = await TcpProxy(a.port).start()
    try:
        behind_proxy = await spawn(3, "lb")
        on_c = (await spawn(1, "c"))[0]
        for index, peer in enumerate(behind_proxy):
            await peer.connect(ws_url(proxy.port), note, 701 + index, maxBackoffTime=500)
        await on_c.connect(ws_url(c), note, 710)
        for index, peer in enumerate(behind_proxy):
            await peer.call("setAwareness", state={"user": f"lb{index}"})
        await on_c.call("waitAwareness", present=[701, 702, 703], timeout=5)
        peers = [*behind_proxy, on_c]
        typists = [Typist(peer, f"{peer.name}") for peer in peers]

        stop = asyncio.Event()
        typing = [asyncio.create_task(t.keep_typing(stop, INTERVAL_S)) for t in typists]
        try:
            await asyncio.sleep(1.5)  # everyone types on a live cluster
            a.kill()  # SIGKILL, mid-typing: no flush, no goodbye
            killed = time.monotonic()
            assert not alive(a)
            proxy.retarget(b.port)  # the load balancer takes A out
            await asyncio.sleep(3)  # the clients keep typing, offline, then on B
        finally:
            stop.set()
            await asyncio.gather(*typing)

        # Every client is back, through the proxy, on B.
        for peer in behind_proxy:
            await peer.call("waitSynced", timeout=15)
            assert (await peer.call("status"))["connected"], peer.name
        everything = [word for t in typists for word in t.typed]
        text = await converge(peers, 20, containing=everything, tails=cluster.tails())
        assert len(text) == sum(t.typed_length for t in typists)
        expected = {701 + i: t.typed_length for i, t in enumerate(typists[:3])}
        expected[710] = typists[3].typed_length
        for peer in peers:
            assert await state_vector(peer) == expected, peer.name
        for server in (b, c):
            assert await stored_text(server, note) == text, f"instance :{server.port}"
            assert await served_state_vector(server, note) == expected

        # Their presence is back on C once they are on B, and stays after A is known dead
        # (its clients' states removed): they are B's clients now. Checked before any client
        # renews its state (every 15 s), so it is the servers' doing.
        await asyncio.sleep(max(0.0, killed + 3 * HEARTBEAT_S + 3 - time.monotonic()))
        try:
            await on_c.call("waitAwareness", present=[701, 702, 703], timeout=3)
        except NodePeerError as exc:
            raise AssertionError(f"{exc}\n{cluster.tails()}") from None
    finally:
        await proxy.stop()

    # Everything is stored: all instances stopped (B and C flush), a fresh single one on the
    # same schema serves the same text.
    for peer in peers:
        await peer.close()
    cluster.stop_all()
    single = {key: value for key, value in cluster.env.items() if key != "REDIS_URL"}
    with LiveServer(single, tmp_path) as fresh:
        assert await stored_text(fresh, note) == text
        assert await served_state_vector(fresh, note) == expected


async def test_what_a_killed_instance_had_not_stored_is_kept(make_cluster, spawn, tmp_path):
    """A's client typed, A passed it on through Redis but had not stored it yet (a long group
    commit window), then the client and A are both killed: nobody will send those edits
    again, and the instances that have them store them."""
    cluster = make_cluster()
    [a] = await cluster.start(1, {"COSCRIBE_FLUSH_WINDOW_MS": "60000"})
    b, c = await cluster.start(2)
    note = f"held-{uuid.uuid4().hex[:8]}"
    await create_note(b, note, text="stored. ")
    on_a, on_b = await spawn(2)
    await on_a.connect(ws_url(a), note, 1501)
    await on_b.connect(ws_url(b), note, 1502)
    await on_a.call("insertText", index=8, text="typed on A, never stored by A")
    await on_b.call("waitText", text="stored. typed on A, never stored by A", timeout=5)
    await on_b.call("insertText", index=0, text="B: ")
    await on_a.call("waitText", text="B: stored. typed on A, never stored by A", timeout=5)
    with cluster.db() as conn:
        rows = conn.execute(
            "SELECT count(*) FROM note_updates WHERE note_id = %s", (note,)
        ).fetchone()[0]
    assert rows <= 2, f"{rows} rows: A stored within its window, the test proves nothing"
    await on_a.kill()
    a.kill()
    everything = "B: stored. typed on A, never stored by A"
    # Once A is known dead, it is stored: C, which never opened the note, reads it from
    # storage; and so does a fresh instance after a restart.

    async def stored() -> bool:
        return await stored_text(c, note) == everything

    await eventually(stored, lambda: f"not stored:\n{cluster.tails()}", 15)
    await on_b.close()
    cluster.stop_all()
    single = {key: value for key, value in cluster.env.items() if key != "REDIS_URL"}
    with LiveServer(single, tmp_path) as fresh:
        assert await stored_text(fresh, note) == everything, cluster.tails()
