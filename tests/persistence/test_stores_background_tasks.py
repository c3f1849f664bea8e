"""The background-task queue: claim order, leases, retries, and claimers racing each other."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from persistence.errors import ConflictError, InvalidError
from persistence.stores import background_tasks as jobs

from .store_helpers import T0, TIMEOUT, in_thread


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def test_claim_takes_the_most_urgent_runnable_job(db):
    with db.begin() as conn:
        plain = jobs.enqueue(conn, "k", {"n": 1}, now=T0)
        urgent = jobs.enqueue(conn, "k", priority=5, run_after=T0 + seconds(10), now=T0)
        older = jobs.enqueue(conn, "k", run_after=T0 - seconds(60), now=T0)
        jobs.enqueue(conn, "k", priority=9, run_after=T0 + seconds(3600), now=T0)
    assert plain["status"] == "queued" and plain["attempts"] == 0 and plain["run_after"] == T0
    assert (plain["max_attempts"], plain["priority"], plain["workspace_id"]) == (5, 0, None)
    now = T0 + seconds(10)
    claimed = []
    with db.begin() as conn:
        while (job := jobs.claim(conn, "w1", now=now)) is not None:
            claimed.append(job)
    assert [job["id"] for job in claimed] == [urgent["id"], older["id"], plain["id"]]
    first = claimed[0]
    assert first["status"] == "running" and first["attempts"] == 1
    assert first["locked_by"] == "w1" and first["locked_until"] == now + seconds(60)
    with db.begin() as conn:
        assert jobs.get(conn, first["id"]) == first


def test_claim_by_kind(db):
    with db.begin() as conn:
        compact = jobs.enqueue(conn, "compact", now=T0)
        prune = jobs.enqueue(conn, "prune", now=T0)
    with db.begin() as conn:
        assert jobs.claim(conn, "w", kinds=[], now=T0) is None
        assert jobs.claim(conn, "w", kinds=["prune", "other"], now=T0)["id"] == prune["id"]
        assert jobs.claim(conn, "w", kinds="prune", now=T0) is None
        assert jobs.claim(conn, "w", kinds="compact", now=T0)["id"] == compact["id"]


def test_an_expired_lease_lets_another_worker_take_the_job(db):
    with db.begin() as conn:
        job = jobs.enqueue(conn, "k", now=T0)
        jobs.claim(conn, "alice", lease_seconds=30, now=T0)
    with db.begin() as conn:
        assert jobs.claim(conn, "bob", now=T0 + seconds(30)) is None  # lease still valid
        taken = jobs.claim(conn, "bob", now=T0 + seconds(31))
    assert taken["id"] == job["id"] and taken["locked_by"] == "bob" and taken["attempts"] == 2
    assert "lease of worker 'alice' expired" in taken["error"]
    with db.begin() as conn:
        for late in (jobs.complete, jobs.heartbeat):
            with pytest.raises(
                ConflictError, match=r"not locked by worker 'alice'.*locked by 'bob'"
            ):
                late(conn, job["id"], "alice")
        renewed = jobs.heartbeat(conn, job["id"], "bob", lease_seconds=60, now=T0 + seconds(40))
        assert renewed["locked_until"] == T0 + seconds(100)
        assert jobs.claim(conn, "carol", now=T0 + seconds(95)) is None
        done = jobs.complete(conn, job["id"], "bob", {"rows": 3}, now=T0 + seconds(50))
    assert done["status"] == "succeeded" and done["result"] == {"rows": 3}
    assert done["finished_at"] == T0 + seconds(50) and done["locked_until"] is None
    with db.begin() as conn:
        assert jobs.get(conn, job["id"]) == done
        with pytest.raises(ConflictError, match=r"\(it is succeeded\)"):
            jobs.complete(conn, job["id"], "bob")
        assert jobs.claim(conn, "carol", now=T0 + seconds(10_000)) is None


def test_fail_backs_off_exponentially_then_gives_up(db):
    with db.begin() as conn:
        job = jobs.enqueue(conn, "k", max_attempts=3, now=T0)
    now = T0
    for attempt, delay in ((1, 10), (2, 20)):
        with db.begin() as conn:
            assert jobs.claim(conn, "w", now=now)["attempts"] == attempt
            failed = jobs.fail(conn, job["id"], "w", f"boom {attempt}", now=now)
        assert failed["status"] == "queued" and failed["run_after"] == now + seconds(delay)
        assert failed["error"] == f"boom {attempt}" and failed["locked_by"] is None
        with db.begin() as conn:
            assert jobs.claim(conn, "w", now=now + seconds(delay - 1)) is None
        now += seconds(delay)
    with db.begin() as conn:
        assert jobs.claim(conn, "w", now=now)["attempts"] == 3
        final = jobs.fail(conn, job["id"], "w", ValueError("no more"), now=now)
    assert final["status"] == "failed" and final["error"] == "ValueError: no more"
    assert final["finished_at"] == now
    with db.begin() as conn:
        assert jobs.claim(conn, "w", now=now + seconds(10_000)) is None
        with pytest.raises(ConflictError, match=r"\(it is failed\)"):
            jobs.fail(conn, job["id"], "w", "again")


def test_fail_with_an_explicit_delay_or_for_good(db):
    with db.begin() as conn:
        first = jobs.enqueue(conn, "k", now=T0)
        second = jobs.enqueue(conn, "k", now=T0)
        jobs.claim(conn, "w", now=T0)
        jobs.claim(conn, "w", now=T0)
        retried = jobs.fail(conn, first["id"], "w", "x\x00" + "y" * 20_000, retry_delay_seconds=0)
        assert retried["status"] == "queued"
        assert len(retried["error"]) == jobs.MAX_ERROR_CHARS and "\x00" not in retried["error"]
        assert jobs.fail(conn, second["id"], "w", "fatal", retry=False)["status"] == "failed"
    with db.begin() as conn:
        assert jobs.get(conn, first["id"])["error"] == retried["error"]


def test_a_job_that_outlives_its_attempts_fails_instead_of_running_again(db):
    with db.begin() as conn:
        doomed = jobs.enqueue(conn, "k", max_attempts=1, now=T0)
        jobs.claim(conn, "w", lease_seconds=10, now=T0)
        fresh = jobs.enqueue(conn, "k", run_after=T0 + seconds(5), now=T0)
    with db.begin() as conn:
        assert jobs.claim(conn, "w2", now=T0 + seconds(11))["id"] == fresh["id"]
        gone = jobs.get(conn, doomed["id"])
    assert gone["status"] == "failed" and gone["finished_at"] == T0 + seconds(11)
    assert "gave up after 1 attempts" in gone["error"] and "'w'" in gone["error"]


def test_cancel_update_and_retention(db):
    with db.begin() as conn:
        queued = jobs.enqueue(conn, "k", now=T0)
        running = jobs.enqueue(conn, "k", priority=1, now=T0)
        kept = jobs.enqueue(conn, "k", now=T0)
        assert jobs.claim(conn, "w", now=T0)["id"] == running["id"]
        assert jobs.update(conn, kept["id"], priority=3, max_attempts=9)["priority"] == 3
        with pytest.raises(ConflictError, match="only a queued one can be changed"):
            jobs.update(conn, running["id"], priority=3)
        cancelled = jobs.cancel(conn, queued["id"], reason="not needed", now=T0 + seconds(1))
        assert cancelled["status"] == "cancelled" and cancelled["error"] == "not needed"
        jobs.cancel(conn, running["id"], now=T0 + seconds(2))
        with pytest.raises(ConflictError, match="is not locked by worker 'w'"):
            jobs.complete(conn, running["id"], "w")
        with pytest.raises(ConflictError, match="already cancelled"):
            jobs.cancel(conn, queued["id"])
    with db.begin() as conn:
        assert jobs.delete_finished(conn, T0 + seconds(2)) == 1
        assert jobs.delete_finished(conn, T0 + seconds(3)) == 1
        assert [job["id"] for job in jobs.list_jobs(conn).items] == [kept["id"]]


def test_queue_operations_validate_their_input(db, subtests):
    with db.begin() as conn:
        job = jobs.enqueue(conn, "k")
    cases = {
        "empty worker": (lambda c: jobs.claim(c, ""), "worker id"),
        "zero lease": (lambda c: jobs.claim(c, "w", lease_seconds=0), "lease_seconds"),
        "lease as text": (lambda c: jobs.claim(c, "w", lease_seconds="60"), "lease_seconds"),
        "naive now": (lambda c: jobs.claim(c, "w", now=T0.replace(tzinfo=None)), "now"),
        "bad kind": (lambda c: jobs.claim(c, "w", kinds=["x" * 65]), "kind"),
        "result": (lambda c: jobs.complete(c, job["id"], "w", result=[1]), "result"),
        "delay": (lambda c: jobs.fail(c, job["id"], "w", "e", retry_delay_seconds=-1), "delay"),
        "retention": (lambda c: jobs.delete_finished(c, "yesterday"), "older_than"),
    }
    for name, (call, needle) in cases.items():
        with subtests.test(msg=name), pytest.raises(InvalidError, match=needle), db.begin() as c:
            call(c)


def test_concurrent_workers_never_claim_the_same_job(db):
    # Real threads, each transaction on its own connection. On memory the single pooled
    # connection serializes them, which must be just as correct.
    with db.begin() as conn:
        made = {jobs.enqueue(conn, "k", {"n": n})["id"] for n in range(60)}
    claims: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(name: str) -> int:
        done = 0
        while True:
            with db.begin() as conn:
                job = jobs.claim(conn, name)
            if job is None:
                return done
            with lock:
                claims[job["id"]] += 1
            with db.begin() as conn:
                jobs.complete(conn, job["id"], name)
            done += 1

    futures = [in_thread(lambda name=f"w{i}": worker(name)) for i in range(4)]
    assert sum(future.result(TIMEOUT) for future in futures) == len(made)
    assert set(claims) == made and set(claims.values()) == {1}
    with db.begin() as conn:
        page = jobs.list_jobs(conn, limit=100)
    assert {job["status"] for job in page.items} == {"succeeded"} and len(page.items) == 60


def test_skip_locked_hands_a_second_claimer_another_job(db):
    if db.driver != "postgres":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite has a single writer")
    with db.begin() as conn:
        first = jobs.enqueue(conn, "k", priority=1, now=T0)
        second = jobs.enqueue(conn, "k", now=T0)
    claimed, release = threading.Event(), threading.Event()

    def worker_a() -> str:
        with db.begin() as conn:
            job = jobs.claim(conn, "a", now=T0)
            claimed.set()
            assert release.wait(TIMEOUT)  # hold the claim transaction open
            return job["id"]

    a = in_thread(worker_a)
    try:
        assert claimed.wait(TIMEOUT)
        for expected in (second["id"], None):
            with db.begin() as conn:
                # Were B to wait for A's row lock, this makes it fail instead of hanging.
                conn.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
                job = jobs.claim(conn, "b", now=T0)
                assert (job and job["id"]) == expected
    finally:
        release.set()
    assert a.result(TIMEOUT) == first["id"]
    with db.begin() as conn:
        assert jobs.get(conn, first["id"])["locked_by"] == "a"
        assert jobs.get(conn, second["id"])["locked_by"] == "b"
