"""The background worker against a real database: retries, leases, schedules."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from persistence.errors import NotFoundError
from persistence.schema import schedules as schedules_table
from persistence.stores import background_tasks, schedules
from server.jobs import HANDLERS, PermanentError
from server.settings import Settings
from server.worker import Worker
from tests.yclient import eventually

runs: list[dict] = []


def record(ctx, payload):
    runs.append(payload)
    return {"ok": True}


def explode(ctx, payload):
    raise RuntimeError("disk on fire")


def refuse(ctx, payload):
    raise PermanentError("bad payload")


@pytest.fixture
async def worker(db):
    runs.clear()
    worker = Worker(
        db,
        Settings(worker_poll_s=1, job_lease_s=3),
        {"record": record, "explode": explode, "refuse": refuse},
    )
    running = asyncio.ensure_future(worker.run())
    yield worker
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


def job(db, job_id: str) -> dict:
    with db.read() as conn:
        return background_tasks.get(conn, job_id)


async def test_jobs_run_and_their_results_are_kept(db, worker):
    with db.begin() as conn:
        queued = background_tasks.enqueue(conn, "record", {"n": 1})
    worker.wake()
    await eventually(lambda: job(db, queued["id"])["status"] == "succeeded", timeout=10)
    assert job(db, queued["id"])["result"] == {"ok": True}
    assert runs == [{"n": 1}]


async def test_a_failing_job_is_retried_with_backoff_then_fails_with_its_error(db, worker):
    with db.begin() as conn:
        queued = background_tasks.enqueue(conn, "explode", {}, max_attempts=2)
    worker.wake()
    await eventually(lambda: job(db, queued["id"])["attempts"] == 1, timeout=10)
    await eventually(lambda: job(db, queued["id"])["status"] == "queued", timeout=10)
    first = job(db, queued["id"])
    assert "disk on fire" in first["error"]
    assert first["run_after"] > datetime.now(UTC), "the retry waits (backoff)"
    with db.begin() as conn:  # skip the wait
        background_tasks.update(conn, queued["id"], run_after=datetime.now(UTC))
    worker.wake()
    await eventually(lambda: job(db, queued["id"])["status"] == "failed", timeout=10)
    assert job(db, queued["id"])["attempts"] == 2


async def test_a_permanent_error_fails_at_once(db, worker):
    with db.begin() as conn:
        queued = background_tasks.enqueue(conn, "refuse", {}, max_attempts=5)
    worker.wake()
    await eventually(lambda: job(db, queued["id"])["status"] == "failed", timeout=10)
    assert job(db, queued["id"])["attempts"] == 1
    assert "bad payload" in job(db, queued["id"])["error"]


async def test_a_job_whose_worker_died_runs_again_after_its_lease(db, worker):
    with db.begin() as conn:
        queued = background_tasks.enqueue(conn, "record", {"n": 2})
        # Another worker claims it and dies: its lease runs out in a second.
        background_tasks.claim(conn, "dead-worker", kinds=["record"], lease_seconds=1)
    assert job(db, queued["id"])["locked_by"] == "dead-worker"
    await eventually(lambda: job(db, queued["id"])["status"] == "succeeded", timeout=10)
    assert job(db, queued["id"])["locked_by"] is None or job(db, queued["id"])["attempts"] == 2
    assert runs == [{"n": 2}]


async def test_due_schedules_queue_jobs_that_run(db, worker):
    with db.begin() as conn:
        schedule = schedules.create(
            conn, "every-minute", "* * * * *", "record", job_payload={"s": 1}
        )
        conn.execute(
            sa.update(schedules_table)
            .where(schedules_table.c.id == schedule["id"])
            .values(next_run_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    worker.wake()

    def statuses() -> list[str]:
        with db.read() as conn:
            jobs = background_tasks.list_jobs(conn, schedule_id=schedule["id"]).items
        return [j["status"] for j in jobs]

    await eventually(lambda: statuses() == ["succeeded"], timeout=10, what="the scheduled job")
    assert runs == [{"s": 1}]
    with db.read() as conn:
        after = schedules.get(conn, schedule["id"])
    assert after["next_run_at"] > datetime.now(UTC)


async def test_the_prune_job_applies_the_retention_policy(db):
    worker = Worker(db, Settings(worker_poll_s=1), HANDLERS)
    with db.begin() as conn:
        old = background_tasks.enqueue(conn, "record", {})
        background_tasks.cancel(conn, old["id"], now=datetime.now(UTC) - timedelta(days=30))
        queued = background_tasks.enqueue(conn, "prune", {})
    running = asyncio.ensure_future(worker.run())
    try:
        await eventually(lambda: job(db, queued["id"])["status"] == "succeeded", timeout=15)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert old["id"] in job(db, queued["id"])["result"]["jobs"]["ids"]
    with db.read() as conn, pytest.raises(NotFoundError):
        background_tasks.get(conn, old["id"])


async def test_the_prune_job_takes_its_periods_from_the_settings(db):
    # 0 keeps finished jobs forever: the 30-day-old one survives this run.
    worker = Worker(db, Settings(worker_poll_s=1, job_retention_s=0), HANDLERS)
    with db.begin() as conn:
        old = background_tasks.enqueue(conn, "record", {})
        background_tasks.cancel(conn, old["id"], now=datetime.now(UTC) - timedelta(days=30))
        queued = background_tasks.enqueue(conn, "prune", {})
    running = asyncio.ensure_future(worker.run())
    try:
        await eventually(lambda: job(db, queued["id"])["status"] == "succeeded", timeout=15)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert job(db, queued["id"])["result"]["jobs"]["ids"] == []
    assert job(db, old["id"])["status"] == "cancelled"
