"""Presence crosses instances: an awareness state set by a client on instance A appears on
clients of B and C with its content, and goes away there when the client leaves (cleanly, or
its process killed), and when the whole instance A is killed.

y-websocket clients drop a remote state themselves once it is 30 s old; every removal here is
awaited well within that, so it is the server's doing."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.cluster.harness import HEARTBEAT_S, TcpProxy, alive, create_note, eventually, ws_url
from tests.node_peer import NodePeerError

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

CROSS_S = 5  # a state or its removal reaches the other instances within this
# A dead instance is noticed after 3 missed beats; then its clients' states are removed.
DEAD_S = 3 * HEARTBEAT_S + 8


async def test_presence_crosses_instances_and_leaves_with_its_client(make_cluster, spawn):
    cluster = make_cluster()
    a, b, c = await cluster.start(3)
    note = f"aw-{uuid.uuid4().hex[:8]}"
    await create_note(a, note)
    on_a, on_b, on_c, killed_on_a = await spawn(4)
    await on_a.connect(ws_url(a), note, 201)
    await on_b.connect(ws_url(b), note, 202)
    await on_c.connect(ws_url(c), note, 203)
    await killed_on_a.connect(ws_url(a), note, 204)

    ann = {"user": {"name": "ann", "color": "#f00"}, "cursor": {"index": 3}}
    await on_a.call("setAwareness", state=ann)
    for peer in (on_b, on_c):
        states = (await peer.call("waitAwareness", present=[201], timeout=CROSS_S))["states"]
        assert states["201"] == ann, f"{peer.name} sees {states}\n{cluster.tails()}"
    cid = {"user": {"name": "cid"}}
    await on_c.call("setAwareness", state=cid)
    states = (await on_a.call("waitAwareness", present=[203], timeout=CROSS_S))["states"]
    assert states["203"] == cid

    # A state changed on A replaces the old one on C.
    moved = {**ann, "cursor": {"index": 9}}
    await on_a.call("setAwareness", state=moved)

    async def seen_on_c() -> bool:
        return (await on_c.call("getAwareness"))["states"].get("201") == moved

    await eventually(seen_on_c, "C does not see the changed state of 201", CROSS_S)

    # A client that leaves cleanly (its provider sends the removal).
    await on_a.close()
    for peer in (on_b, on_c):
        await peer.call("waitAwareness", absent=[201], timeout=CROSS_S)

    # A client whose process is killed: its instance removes its state, everywhere.
    await killed_on_a.call("setAwareness", state={"user": {"name": "dan"}})
    for peer in (on_b, on_c):
        await peer.call("waitAwareness", present=[204], timeout=CROSS_S)
    await killed_on_a.kill()
    for peer in (on_b, on_c):
        await peer.call("waitAwareness", absent=[204], timeout=CROSS_S)
    # Clients that stay keep their states.
    await on_b.call("waitAwareness", present=[203], timeout=1)


async def test_presence_of_a_killed_instance_is_removed_everywhere(make_cluster, spawn):
    cluster = make_cluster()
    a, b, c = await cluster.start(3)
    note = f"aw-{uuid.uuid4().hex[:8]}"
    await create_note(a, note)
    first_a, second_a, on_b, on_c = await spawn(4)
    await first_a.connect(ws_url(a), note, 301, maxBackoffTime=500)
    await second_a.connect(ws_url(a), note, 302, maxBackoffTime=500)
    await on_b.connect(ws_url(b), note, 303)
    await on_c.connect(ws_url(c), note, 304)
    await first_a.call("setAwareness", state={"user": {"name": "first"}})
    await second_a.call("setAwareness", state={"user": {"name": "second"}})
    await on_b.call("setAwareness", state={"user": {"name": "b"}})
    for peer in (on_b, on_c):
        await peer.call("waitAwareness", present=[301, 302], timeout=CROSS_S)

    a.kill()  # SIGKILL: A says nothing to anyone
    assert not alive(a)
    killed = time.monotonic()
    for peer in (on_c, on_b):
        try:
            await peer.call("waitAwareness", absent=[301, 302], timeout=DEAD_S)
        except NodePeerError as exc:
            raise AssertionError(f"{exc}\n{cluster.tails()}") from None
    assert time.monotonic() - killed < DEAD_S + 1
    # The living instances' clients are still present on each other.
    await on_c.call("waitAwareness", present=[303], timeout=1)


async def test_a_client_moved_off_a_killed_instance_keeps_its_presence_live(make_cluster, spawn):
    """A's client moves (through the load balancer) to B when A is killed: its presence
    changes reach C at once, also before A is known dead (beats every 5 s here: 15 s)."""
    cluster = make_cluster(COSCRIBE_CLUSTER_HEARTBEAT_S="5")
    a, b, c = await cluster.start(3)
    note = f"aw-{uuid.uuid4().hex[:8]}"
    await create_note(a, note)
    proxy = await TcpProxy(a.port).start()
    try:
        moving, on_c = await spawn(2)
        await moving.connect(ws_url(proxy.port), note, 1901, maxBackoffTime=300)
        await on_c.connect(ws_url(c), note, 1902)
        await moving.call("setAwareness", state={"cursor": 1})
        await on_c.call("waitAwareness", present=[1901], timeout=CROSS_S)

        a.kill()
        proxy.retarget(b.port)
        await moving.call("waitStatus", connected=False, timeout=10)
        await moving.call("waitSynced", timeout=15)  # on B now
        await moving.call("setAwareness", state={"cursor": 2})

        seen: dict = {}

        async def moved() -> bool:
            seen.update((await on_c.call("getAwareness"))["states"])
            return seen.get("1901") == {"cursor": 2}

        await eventually(
            moved,
            lambda: f"C sees {seen}, not the moved client's new state\n{cluster.tails()}",
            CROSS_S,
        )
    finally:
        await proxy.stop()
