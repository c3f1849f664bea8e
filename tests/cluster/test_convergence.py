"""Three instances, Node yjs + y-websocket clients spread over them, everyone typing at once:
every client ends with the same text and the same state vector, every instance serves that
note over REST, and each update is stored once (not once per instance)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis

from tests.cluster.harness import (
    Typist,
    converge,
    covered,
    create_note,
    eventually,
    overlaps,
    served_state_vector,
    state_vector,
    stored_ranges,
    stored_text,
    stored_updates,
    ws_url,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

WORDS = 15  # per client
PER_INSTANCE = 2


async def test_concurrent_typing_on_three_instances_converges(make_cluster, spawn):
    # No compaction: the update log must still hold every row when it is read at the end.
    cluster = make_cluster(COSCRIBE_COMPACT_AFTER_UPDATES="1000000")
    instances = await cluster.start(3)
    note = f"conv-{uuid.uuid4().hex[:8]}"
    await create_note(instances[0], note)

    peers = await spawn(3 * PER_INSTANCE)
    typists = []
    for index, peer in enumerate(peers):
        server = instances[index // PER_INSTANCE]
        await peer.connect(ws_url(server), note, 101 + index)
        typists.append(Typist(peer, f"{'abc'[index // PER_INSTANCE]}{index}"))

    async def type_words(typist: Typist) -> None:
        for _ in range(WORDS):
            await typist.type()
            await asyncio.sleep(0.01)  # interleave with the others

    await asyncio.gather(*(type_words(t) for t in typists))
    everything = [word for t in typists for word in t.typed]
    text = await converge(peers, 20, containing=everything, tails=cluster.tails())
    # Every word once: nothing doubled by passing through several instances.
    assert len(text) == sum(t.typed_length for t in typists), text
    assert sorted(text.replace("><", ">\n<").split("\n")) == sorted(everything)

    expected = {101 + index: t.typed_length for index, t in enumerate(typists)}
    vectors = await asyncio.gather(*(state_vector(peer) for peer in peers))
    for peer, vector in zip(peers, vectors, strict=True):
        assert vector == expected, f"{peer.name}: state vector {vector}, want {expected}"

    for server in instances:
        assert await stored_text(server, note) == text, f"instance :{server.port}"
        assert await served_state_vector(server, note) == expected, f"instance :{server.port}"

    # Stored once: the rows of the log cover every client's updates, and no range twice.
    async def all_stored() -> bool:
        return covered(stored_ranges(stored_updates(cluster, note))) == expected

    await eventually(
        all_stored,
        lambda: f"stored {covered(stored_ranges(stored_updates(cluster, note)))}, want {expected}",
        10,
    )
    updates = stored_updates(cluster, note)
    assert overlaps(stored_ranges(updates)) == [], f"updates stored more than once ({len(updates)})"
    assert len(updates) <= len(everything)


async def test_joining_on_another_instance_gets_what_is_not_stored_yet(make_cluster, spawn):
    """B opens a note that is live on A, whose edits A has not stored yet (a long group commit
    window): the client on B still gets every one of them (storage plus the stream's tail)."""
    cluster = make_cluster()
    # A stores 5 s after the first edit, long after the checks below.
    [a] = await cluster.start(1, {"COSCRIBE_FLUSH_WINDOW_MS": "5000"})
    [b] = await cluster.start(1)
    note = f"tail-{uuid.uuid4().hex[:8]}"
    await create_note(b, note)
    on_a, joins_b, joins_a = await spawn(3)
    await on_a.connect(ws_url(a), note, 1601)
    typist = Typist(on_a, "a")
    await typist.type(5)
    await on_a.call("deleteText", index=0, length=2)  # a deletion too
    want = await on_a.text()
    assert stored_updates(cluster, note) == [], "A stored within its window: proves nothing"

    await joins_b.connect(ws_url(b), note, 1602, timeout=10)
    assert await joins_b.text() == want, cluster.tails()
    assert stored_updates(cluster, note) == []  # from the stream, not from storage
    # Both ways, live, and a late joiner on A sees B's edit too.
    await joins_b.call("insertText", index=0, text="[b]")
    await on_a.call("waitText", text="[b]" + want, timeout=5)
    await joins_a.connect(ws_url(a), note, 1603)
    assert await joins_a.text() == "[b]" + want


WINDOW_S = 5  # COSCRIBE_CLUSTER_WINDOW_S, its minimum


async def test_streams_are_prefixed_trimmed_and_expire(make_cluster, spawn):
    """Every key the instances make starts with the prefix; a note's stream keeps about the
    window's worth of entries once more come, and expires when the note is quiet."""
    cluster = make_cluster(COSCRIBE_CLUSTER_WINDOW_S=str(WINDOW_S))
    [a] = await cluster.start(1)
    note = f"trim-{uuid.uuid4().hex[:8]}"
    await create_note(a, note)
    [peer] = await spawn(1)
    await peer.connect(ws_url(a), note, 1701)
    typist = Typist(peer, "t")
    await typist.type(400)
    key = f"{cluster.prefix}note:{note}"
    client = redis.Redis.from_url(cluster.redis_url)
    try:
        keys = [k.decode() for k in client.scan_iter(match=f"*{note}*", count=1000)]
        assert keys and all(k.startswith(cluster.prefix) for k in keys), keys
        beats = list(client.scan_iter(match=f"{cluster.prefix}instance:*", count=1000))
        assert len(beats) == 1, beats  # the heartbeat, under the prefix too
        entries = client.xlen(key)
        # (Updates that arrive together may share an entry.)
        assert entries >= 250, f"{entries} entries for 400 updates: too few to see trimming"
        ttl = client.pttl(key)
        assert 0 < ttl <= 2 * WINDOW_S * 1000, f"the stream expires in {ttl} ms"

        # Past the window, new entries trim the old ones (by whole stream nodes: about).
        await asyncio.sleep(WINDOW_S + 0.5)  # the window itself
        for _ in range(3):
            await typist.type()
            await asyncio.sleep(0.3)  # separate writes

        async def trimmed() -> bool:
            return client.xlen(key) < 150

        await eventually(trimmed, lambda: f"{client.xlen(key)} entries left", 5)
        assert await peer.text() == "".join(reversed(typist.typed))
    finally:
        client.close()
