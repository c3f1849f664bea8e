"""Redis stopped for 30 s while clients on two instances type (a private redis-server, stopped
by its pid and started again, empty, on the same port): each instance keeps serving its own
clients and says on /health that Redis is down, while staying ready; once Redis is back the
rooms converge again without restarting anything, and nothing typed is lost. And an instance
started while Redis is down serves anyway and joins once Redis is up."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.cluster.harness import (
    Typist,
    alive,
    converge,
    create_note,
    eventually,
    health,
    ready_status,
    redis_state,
    state_vector,
    stored_text,
    ws_url,
)
from tests.live_server import LiveServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

OUTAGE_S = 30
INTERVAL_S = 0.25  # between one client's words
NOTICE_S = 15  # for an instance to see Redis go, or come back


@pytest.mark.slow
async def test_redis_down_for_30_seconds_then_back_empty(
    make_cluster, private_redis, spawn, tmp_path
):
    cluster = make_cluster(redis_url=private_redis.url)
    a, b = await cluster.start(2)
    pids = [a.process.pid, b.process.pid]
    note = f"out-{uuid.uuid4().hex[:8]}"
    await create_note(a, note)
    a1, a2, b1 = await spawn(3)
    await a1.connect(ws_url(a), note, 901)
    await a2.connect(ws_url(a), note, 902)
    await b1.connect(ws_url(b), note, 903)
    typists = [Typist(a1, "a1"), Typist(a2, "a2"), Typist(b1, "b1")]
    for server in (a, b):
        body = await health(server)
        assert redis_state(body) == "ok", body

    # Before: typing crosses.
    for typist in typists:
        await typist.type(2)
    await converge([a1, a2, b1], 10, containing=[w for t in typists for w in t.typed])

    private_redis.stop()
    stopped = time.monotonic()

    async def says(server, state: str) -> dict | None:
        body = await health(server)
        return body if redis_state(body) == state else None

    stop = asyncio.Event()
    typing = [asyncio.create_task(t.keep_typing(stop, INTERVAL_S)) for t in typists]
    try:
        for server in (a, b):
            body = await eventually(
                lambda server=server: says(server, "down"),
                f"/health of :{server.port} does not say redis down",
                NOTICE_S,
            )
            assert isinstance(body["redis"].get("since"), (int, float)), body
            assert body["redis"].get("error"), body
            assert await ready_status(server) == 200  # still serves its own clients

        # While Redis is down, the two clients on A keep seeing each other.
        while time.monotonic() - stopped < OUTAGE_S - 5:
            mark = [*typists[0].typed, *typists[1].typed]
            await converge([a1, a2], 5, containing=mark, tails=cluster.tails())
            await asyncio.sleep(2)  # between checks; the typists go on meanwhile
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
    finally:
        stop.set()
        await asyncio.gather(*typing)
    on_a = [*typists[0].typed, *typists[1].typed]
    await converge([a1, a2], 5, containing=on_a, tails=cluster.tails())
    on_b = await b1.text()
    assert all(word in on_b for word in typists[2].typed)

    # Redis back, empty, on the same port. Nobody is restarted.
    private_redis.start()
    for server in (a, b):
        await eventually(
            lambda server=server: says(server, "ok"),
            f"/health of :{server.port} does not say redis ok again",
            NOTICE_S,
        )
    assert [a.process.pid, b.process.pid] == pids and alive(a) and alive(b)

    # The rooms converge, without anyone typing again.
    everything = [w for t in typists for w in t.typed]
    text = await converge([a1, a2, b1], 30, containing=everything, tails=cluster.tails())
    assert len(text) == sum(t.typed_length for t in typists)
    expected = {901 + i: t.typed_length for i, t in enumerate(typists)}
    for peer in (a1, a2, b1):
        assert await state_vector(peer) == expected, peer.name
    for server in (a, b):
        assert await stored_text(server, note) == text, f"instance :{server.port}"

    # And typing crosses again.
    await typists[2].type()
    await typists[0].type()
    everything = [w for t in typists for w in t.typed]
    text = await converge([a1, a2, b1], 10, containing=everything, tails=cluster.tails())

    # All of it stored: a fresh single instance on the schema serves the same text.
    for peer in (a1, a2, b1):
        await peer.close()
    cluster.stop_all()
    single = {key: value for key, value in cluster.env.items() if key != "REDIS_URL"}
    with LiveServer(single, tmp_path) as fresh:
        assert await stored_text(fresh, note) == text


async def test_an_instance_started_while_redis_is_down_joins_once_it_is_up(
    make_cluster, private_redis, spawn
):
    """A rolling deploy while Redis restarts: the instance starts anyway, serves its own
    clients, says Redis is down, and joins the others once Redis answers."""
    cluster = make_cluster(redis_url=private_redis.url)
    [b] = await cluster.start(1)
    private_redis.stop()
    [a] = await cluster.start(1)
    body = await health(a)
    assert redis_state(body) == "down", body
    assert await ready_status(a) == 200
    note = f"late-{uuid.uuid4().hex[:8]}"
    await create_note(a, note)
    a1, a2, b1 = await spawn(3)
    await a1.connect(ws_url(a), note, 1801)
    await a2.connect(ws_url(a), note, 1802)
    await a1.call("insertText", index=0, text="while down ")
    await a2.call("waitText", text="while down ", timeout=5)

    private_redis.start()
    for server in (a, b):
        await eventually(
            lambda server=server: says_ok(server),
            f"/health of :{server.port} does not say redis ok",
            NOTICE_S,
        )
    await b1.connect(ws_url(b), note, 1803)
    await b1.call("insertText", index=0, text="[b] ")
    text = await converge([a1, a2, b1], 15, containing=["while down ", "[b] "])
    assert text == "[b] while down "


async def says_ok(server) -> bool:
    return redis_state(await health(server)) == "ok"
