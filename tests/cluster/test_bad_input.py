"""Bad input on the bus: entries another program wrote into a note's stream (garbage fields,
missing fields, an unknown kind, a truncated or garbled Yjs update, a huge field) are logged
with the note and skipped, never applied, and never stop an instance or its reader loop: live
typing on that note and on another keeps crossing instances. And a Redis that answers slowly
never holds up an instance's local editing or its health."""

from __future__ import annotations

import time
import uuid

import pycrdt
import pytest
import redis

from tests.cluster.harness import (
    TcpProxy,
    Typist,
    alive,
    converge,
    covered,
    create_note,
    delete_keys,
    eventually,
    health,
    log_since,
    overlaps,
    state_vector,
    stored_ranges,
    stored_text,
    stored_updates,
    ws_url,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

POISON = "POISON-never-applied"
HUGE_BYTES = 20 * 1024 * 1024  # past every limit on updates (16 MiB by default)


def poison_update() -> bytes:
    doc = pycrdt.Doc(client_id=666)
    doc.get("content", type=pycrdt.Text).insert(0, POISON * 4)
    return doc.get_update()


def bad_entries() -> list[tuple[str, dict[bytes, bytes]]]:
    update = poison_update()
    return [
        ("garbage fields", {b"x": b"y", b"\xff": b"\x00"}),
        ("no payload", {b"o": b"intruder", b"k": b"u"}),
        ("no kind", {b"o": b"intruder", b"d": b"\x00\x00"}),
        ("no origin", {b"k": b"u", b"d": b"\xff\xff\xff"}),
        ("unknown kind", {b"o": b"intruder", b"k": b"zz", b"d": b"\x00\x00"}),
        ("binary origin", {b"o": b"\xff\xfe\x00", b"k": b"u", b"d": b"\x00\x00"}),
        ("huge origin", {b"o": b"i" * 100_000, b"k": b"u", b"d": b"\x00\x00"}),
        ("truncated update", {b"o": b"intruder", b"k": b"u", b"d": update[: len(update) // 2]}),
        ("update cut at its end", {b"o": b"intruder", b"k": b"u", b"d": update[:-1]}),
        ("garbled update", {b"o": b"intruder", b"k": b"u", b"d": b"\xff" * 64}),
        ("empty update", {b"o": b"intruder", b"k": b"u", b"d": b""}),
        ("garbled awareness", {b"o": b"intruder", b"k": b"a", b"d": b"\x05\x01\xff", b"c": b"1"}),
        ("garbled state vector", {b"o": b"intruder", b"k": b"s", b"d": b"\xff\xff\xff"}),
        ("huge payload", {b"o": b"intruder", b"k": b"u", b"d": b"\x01" * HUGE_BYTES}),
    ]


async def test_garbled_stream_entries_are_skipped(make_cluster, spawn):
    cluster = make_cluster(COSCRIBE_COMPACT_AFTER_UPDATES="1000000")
    a, b, c = await cluster.start(3)
    note, other = f"bad-{uuid.uuid4().hex[:8]}", f"good-{uuid.uuid4().hex[:8]}"
    await create_note(a, note)
    await create_note(a, other)
    n_a, n_c, m_a, m_b = await spawn(4)
    await n_a.connect(ws_url(a), note, 1201)
    await n_c.connect(ws_url(c), note, 1202)
    await m_a.connect(ws_url(a), other, 1203)
    await m_b.connect(ws_url(b), other, 1204)
    on_note = [Typist(n_a, "na"), Typist(n_c, "nc")]
    on_other = [Typist(m_a, "ma"), Typist(m_b, "mb")]
    for typist in [*on_note, *on_other]:
        await typist.type()
    await converge([n_a, n_c], 10, containing=[w for t in on_note for w in t.typed])
    await converge([m_a, m_b], 10, containing=[w for t in on_other for w in t.typed])

    offsets = {server.port: len(server.log()) for server in (a, b, c)}
    key = f"{cluster.prefix}note:{note}"
    client = redis.Redis.from_url(cluster.redis_url, socket_timeout=30)
    try:
        assert client.exists(key), f"no stream at {key}: {client.keys(cluster.prefix + '*')}"
        for _what, fields in bad_entries():
            client.xadd(key, fields)
        # Typing goes on while the instances read all that.
        for typist in [*on_note, *on_other]:
            await typist.type(3)
    finally:
        client.close()

    tails = cluster.tails()
    text = await converge(
        [n_a, n_c], 10, containing=[w for t in on_note for w in t.typed], tails=tails
    )
    await converge([m_a, m_b], 10, containing=[w for t in on_other for w in t.typed], tails=tails)
    assert POISON not in text
    assert len(text) == sum(t.typed_length for t in on_note), text
    expected = {1201: on_note[0].typed_length, 1202: on_note[1].typed_length}
    assert await state_vector(n_a) == expected == await state_vector(n_c)
    for server in (a, b, c):
        assert alive(server), f":{server.port} died\n{server.log()[-3000:]}"
        assert (await health(server))["status"] == "ok"
        assert await stored_text(server, note) == text

    # The instances with the note open said so, naming the note.
    for server in (a, c):

        async def logged(server=server) -> bool:
            return any(note in line for line in log_since(server, offsets[server.port]))

        await eventually(
            logged,
            lambda server=server: (
                f":{server.port} logged nothing about {note}: "
                f"{log_since(server, offsets[server.port])[-20:]}"
            ),
            5,
        )

    # And the reader loops go on: more typing crosses, on both notes, both ways.
    for typist in [*on_note, *on_other]:
        await typist.type(2)
    text = await converge(
        [n_a, n_c], 10, containing=[w for t in on_note for w in t.typed], tails=tails
    )
    await converge([m_a, m_b], 10, containing=[w for t in on_other for w in t.typed], tails=tails)

    # Stored once, all of it, and nothing of the bad entries.
    expected = {1201: on_note[0].typed_length, 1202: on_note[1].typed_length}

    async def all_stored() -> bool:
        return covered(stored_ranges(stored_updates(cluster, note))) == expected

    await eventually(
        all_stored,
        lambda: f"stored {covered(stored_ranges(stored_updates(cluster, note)))}, want {expected}",
        10,
    )
    assert overlaps(stored_ranges(stored_updates(cluster, note))) == []
    for server in (a, b, c):
        assert await stored_text(server, note) == text


async def test_a_note_key_of_another_type_does_not_stop_other_notes(make_cluster, spawn):
    """Another program replaces a note's stream by a key of another type: the instances
    reading it stay up, and every other note keeps crossing."""
    cluster = make_cluster()
    a, b = await cluster.start(2)
    broken, fine = f"typ-{uuid.uuid4().hex[:8]}", f"fine-{uuid.uuid4().hex[:8]}"
    await create_note(a, broken)
    await create_note(a, fine)
    broken_a, broken_b, fine_a, fine_b = await spawn(4)
    await broken_a.connect(ws_url(a), broken, 1401)
    await broken_b.connect(ws_url(b), broken, 1402)
    await fine_a.connect(ws_url(a), fine, 1403)
    await fine_b.connect(ws_url(b), fine, 1404)
    on_broken = [Typist(broken_a, "xa"), Typist(broken_b, "xb")]
    on_fine = [Typist(fine_a, "fa"), Typist(fine_b, "fb")]
    for typist in [*on_broken, *on_fine]:
        await typist.type()
    await converge([broken_a, broken_b], 10, containing=[w for t in on_broken for w in t.typed])

    key = f"{cluster.prefix}note:{broken}"
    client = redis.Redis.from_url(cluster.redis_url)
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.delete(key).set(key, b"\xffnot a stream").execute()
        for typist in [*on_broken, *on_fine]:
            await typist.type(3)
        # The other note keeps crossing, both ways.
        await converge(
            [fine_a, fine_b],
            10,
            containing=[w for t in on_fine for w in t.typed],
            tails=cluster.tails(),
        )
    finally:
        client.delete(key)
        client.close()
    for server in (a, b):
        assert alive(server), f":{server.port} died\n{server.log()[-3000:]}"
        assert (await health(server))["status"] == "ok"
    # Each instance still serves its own clients of the broken note.
    for peer, typist in ((broken_a, on_broken[0]), (broken_b, on_broken[1])):
        text = await peer.text()
        assert all(word in text for word in typist.typed), f"{peer.name}: {text}"
    # The key gone (deleted above), the note crosses again, and what was typed meanwhile too.
    for typist in on_broken:
        await typist.type()
    await converge(
        [broken_a, broken_b],
        15,
        containing=[w for t in on_broken for w in t.typed],
        tails=cluster.tails(),
    )


SLOW_S = 0.5  # added each way between the instances and Redis


async def test_a_slow_redis_does_not_hold_up_local_editing(make_cluster, shared_redis_url, spawn):
    port = int(shared_redis_url.rsplit(":", 1)[1].split("/")[0])
    proxy = await TcpProxy(port, delay=SLOW_S).start()
    cluster = None
    try:
        database = shared_redis_url.rsplit("/", 1)[1]
        cluster = make_cluster(
            redis_url=f"redis://127.0.0.1:{proxy.port}/{database}",
            # Beats that take a second to land: do not call anyone dead over it.
            COSCRIBE_CLUSTER_HEARTBEAT_S="5",
        )
        a, b = await cluster.start(2)
        note = f"slow-{uuid.uuid4().hex[:8]}"
        await create_note(a, note)
        a1, a2, b1 = await spawn(3)
        await a1.connect(ws_url(a), note, 1301)
        await a2.connect(ws_url(a), note, 1302)
        await b1.connect(ws_url(b), note, 1303)
        writer = Typist(a1, "a1")

        # Every word reaches the other client of A in much less than one Redis round trip.
        delays = []
        for _ in range(10):
            await writer.type()
            started = time.monotonic()
            text = "".join(reversed(writer.typed))
            await a2.call("waitText", text=text, timeout=10)
            delays.append(time.monotonic() - started)
        assert max(delays) < SLOW_S, f"local broadcast waited on Redis: {delays}"

        started = time.monotonic()
        assert (await health(a))["status"] == "ok"
        assert time.monotonic() - started < SLOW_S

        # Across instances it crosses too, only later.
        await b1.call("waitText", text="".join(reversed(writer.typed)), timeout=30)
    finally:
        await proxy.stop()
        # The fixture cleans up through the cluster's Redis URL, the proxy's: gone now.
        if cluster is not None:
            cluster.stop_all()
            delete_keys(shared_redis_url, cluster.prefix)
