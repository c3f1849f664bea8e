"""Duties done once per note, not once per instance: automatic versions of a note edited on
two instances, compactions of one note started on two instances at once, schedules fired by
three instances polling together."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from datetime import datetime

import pytest

from tests.cluster.harness import (
    Typist,
    api,
    converge,
    create_note,
    eventually,
    served_state_vector,
    state_vector,
    stored_text,
    type_for,
    ws_url,
)
from tests.live_server import LiveServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

VERSION_INTERVAL_S = 3
TYPING_S = 9
JOIN_LATER_S = 2  # more than half an interval


async def test_automatic_versions_once_per_interval_across_instances(make_cluster, spawn):
    cluster = make_cluster(COSCRIBE_AUTO_VERSION_INTERVAL_S=str(VERSION_INTERVAL_S))
    a, b = await cluster.start(2)
    note = f"ver-{uuid.uuid4().hex[:8]}"
    await create_note(a, note)
    on_a, on_b = await spawn(2)
    await on_a.connect(ws_url(a), note, 1001)
    typists = [Typist(on_a, "a"), Typist(on_b, "b")]
    started = time.monotonic()
    # B opens the note well into A's first interval (past its half): the two instances'
    # intervals are out of step, as they are when editors join at different times.
    await type_for(typists[:1], JOIN_LATER_S, 0.2)
    await on_b.connect(ws_url(b), note, 1002)
    await type_for(typists, TYPING_S - JOIN_LATER_S, 0.2)
    await converge([on_a, on_b], 10, containing=[w for t in typists for w in t.typed])
    # The last edits are versioned within an interval (and a tick) after the typing ends.
    await asyncio.sleep(VERSION_INTERVAL_S + 1.5)
    elapsed = time.monotonic() - started

    with cluster.db() as conn:
        made = [
            row[0]
            for row in conn.execute(
                "SELECT created_at FROM note_snapshots WHERE note_id = %s AND kind = 'auto' "
                "ORDER BY created_at",
                (note,),
            )
        ]
    gaps = [
        round((later - earlier).total_seconds(), 2) for earlier, later in itertools.pairwise(made)
    ]
    # One instance versions every interval while edited: at most elapsed/interval + 1 of them.
    # Two instances each doing it would make about twice as many, some of them close together
    # (out of step, as here, at about half an interval; in step, at once). Out of step, one
    # early version while the two fall in step is about one per interval still.
    most = int(elapsed / VERSION_INTERVAL_S) + 1
    assert 2 <= len(made) <= most, (
        f"{len(made)} automatic versions in {elapsed:.1f}s (at most {most}); gaps {gaps}"
    )
    assert all(gap >= VERSION_INTERVAL_S / 2 - 0.2 for gap in gaps), f"versions too close: {gaps}"


async def test_compaction_started_on_two_instances_at_once(make_cluster, spawn, tmp_path):
    cluster = make_cluster(COSCRIBE_WORKER_POLL_S="1", COSCRIBE_COMPACT_AFTER_UPDATES="1000000")
    a, b = await cluster.start(2)
    note = f"cmp-{uuid.uuid4().hex[:8]}"
    await create_note(a, note)
    on_a, on_b = await spawn(2)
    await on_a.connect(ws_url(a), note, 1101)
    await on_b.connect(ws_url(b), note, 1102)
    typists = [Typist(on_a, "a"), Typist(on_b, "b")]
    await type_for(typists, 2, 0.02)

    async def rows() -> int:
        with cluster.db() as conn:
            return conn.execute(
                "SELECT count(*) FROM note_updates WHERE note_id = %s", (note,)
            ).fetchone()[0]

    await eventually(lambda: rows(), "nothing stored", 5)
    before = await rows()

    # Both instances are asked at once, while the clients go on typing.
    stop = asyncio.Event()
    typing = [asyncio.create_task(t.keep_typing(stop, 0.05)) for t in typists]
    try:
        job = {"kind": "compact_note", "payload": {"note_id": note}}
        posted = await asyncio.gather(
            api(a, "POST", "/api/background-tasks", json=job),
            api(b, "POST", "/api/background-tasks", json=job),
        )
        assert all(r.status_code == 201 for r in posted), [r.text for r in posted]
        ids = [r.json()["id"] for r in posted]

        async def finished() -> list | None:
            with cluster.db() as conn:
                found = conn.execute(
                    "SELECT id, status, result, error, locked_by FROM background_tasks "
                    "WHERE id = ANY(%s)",
                    (ids,),
                ).fetchall()
            return found if all(row[1] in ("succeeded", "failed") for row in found) else None

        jobs = await eventually(finished, "the compactions did not finish", 20)
        await asyncio.sleep(1)  # typing goes on after the compactions
    finally:
        stop.set()
        await asyncio.gather(*typing)
    assert [row[1] for row in jobs] == ["succeeded", "succeeded"], jobs
    assert sum(row[2]["rows_before"] for row in jobs) >= 1, jobs

    everything = [w for t in typists for w in t.typed]
    text = await converge([on_a, on_b], 10, containing=everything, tails=cluster.tails())
    expected = {1101: typists[0].typed_length, 1102: typists[1].typed_length}
    assert await state_vector(on_a) == expected
    for peer in (on_a, on_b):
        await peer.close()
    cluster.stop_all()
    # One consistent note in storage: what the clients have, no more (nothing applied twice
    # would show in the text) and no less.
    single = {key: value for key, value in cluster.env.items() if key != "REDIS_URL"}
    with LiveServer(single, tmp_path) as fresh:
        assert await stored_text(fresh, note) == text
        assert await served_state_vector(fresh, note) == expected
    assert before >= 2  # there was a log to compact


async def test_a_schedule_fires_once_per_tick_across_instances(make_cluster):
    cluster = make_cluster(COSCRIBE_WORKER_POLL_S="1")
    a, *_ = await cluster.start(3)
    # A kind no worker runs: its jobs stay queued, to be counted.
    body = {"name": f"tick-{uuid.uuid4().hex[:6]}", "cron": "0 0 1 1 *", "job_kind": "noop"}
    response = await api(a, "POST", "/api/schedules", json=body)
    assert response.status_code == 201, response.text
    schedule = response.json()["id"]

    def next_run() -> datetime:
        with cluster.db() as conn:
            return conn.execute(
                "SELECT next_run_at FROM schedules WHERE id = %s", (schedule,)
            ).fetchone()[0]

    def jobs() -> int:
        with cluster.db() as conn:
            return conn.execute(
                "SELECT count(*) FROM background_tasks WHERE schedule_id = %s", (schedule,)
            ).fetchone()[0]

    for tick in range(1, 3):
        # Due now (a cron tick has passed), for the three workers that poll every second.
        with cluster.db() as conn:
            conn.execute(
                "UPDATE schedules SET next_run_at = now() - interval '1 second' WHERE id = %s",
                (schedule,),
            )
            due = conn.execute("SELECT now()").fetchone()[0]

        async def fired(due: datetime = due) -> bool:
            return next_run() > due

        await eventually(fired, f"tick {tick}: the schedule did not fire", 10)
        # Every instance polls at least twice more before counting: a second firing of the
        # same tick would be queued by then.
        await asyncio.sleep(2.5)
        assert jobs() == tick, f"tick {tick}: {jobs()} jobs queued"
