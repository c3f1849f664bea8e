"""Schedules: cron validation, next_run_at bookkeeping, and firing due schedules as jobs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from persistence.errors import InvalidError, NotFoundError
from persistence.stores import background_tasks as jobs
from persistence.stores import schedules

from .store_helpers import T0, TIMEOUT, in_thread, new_workspace

# T0 is Tuesday 2030-01-01 12:00 UTC.
MINUTE = timedelta(minutes=1)

BAD_CRON = {
    "four fields": "* * * *",
    "six fields (seconds)": "0 * * * * *",
    "macro": "@daily",
    "minute out of range": "61 * * * *",
    "february 30th never comes": "0 0 30 2 *",
    "last day extension": "0 0 L * *",
    "nth weekday extension": "0 0 * * 1#2",
    "hash extension": "H * * * *",
    "question mark": "0 0 ? * *",
    "last weekday extension": "0 0 * * 5L",
    "unknown month name": "0 0 * foo *",
    "day name in the hour field": "0 mon * * *",
    "bad range": "0 0 * * mon-frx",
    "empty": "",
    "too long": "* " * 100 + "*",
    "not a string": 5,
}
BAD_TIMEZONES = ["Mars/Olympus", "../../etc/passwd", "", "America", "x" * 65, None]


def test_cron_and_timezone_are_validated(db, subtests):
    for name, cron in BAD_CRON.items():
        with subtests.test(msg=name), pytest.raises(InvalidError, match="cron"), db.begin() as c:
            schedules.create(c, "s", cron, "k")
    for zone in BAD_TIMEZONES:
        with (
            subtests.test(msg=f"timezone {zone!r}"),
            pytest.raises(InvalidError, match="timezone"),
            db.begin() as conn,
        ):
            schedules.create(conn, "s", "* * * * *", "k", timezone=zone)
    with db.begin() as conn:
        assert schedules.list_schedules(conn).items == []
        made = schedules.create(conn, "a", " */15  9-17 * * MON-fri ", "k", timezone="Asia/Tokyo")
        assert made["cron"] == "*/15 9-17 * * MON-fri"
        schedules.create(conn, "b", "0 0 1 jan,jul *", "k")
        schedules.create(conn, "c", "0 0 29 2 *", "k")  # leap days do come
        with pytest.raises(InvalidError, match="cron"):
            schedules.update(conn, made["id"], cron="0 0 31 4 *")


def test_next_run_at_follows_cron_timezone_and_enabled(db):
    with db.begin() as conn:
        paris = schedules.create(conn, "p", "0 9 * * *", "k", timezone="Europe/Paris", now=T0)
        # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
        assert paris["next_run_at"] == datetime(2030, 1, 2, 8, 0, tzinfo=UTC)
        summer = datetime(2030, 7, 1, 12, tzinfo=UTC)
        moved = schedules.update(conn, paris["id"], cron="30 9 * * *", now=summer)
        assert moved["next_run_at"] == datetime(2030, 7, 2, 7, 30, tzinfo=UTC)
        # Changing something else keeps the plan.
        repaid = schedules.update(conn, paris["id"], job_payload={"x": 1})
        assert repaid["next_run_at"] == moved["next_run_at"]

        often = schedules.create(conn, "o", "*/5 * * * *", "k", enabled=False, now=T0)
        assert often["next_run_at"] is None and often["enabled"] is False
        enabled = schedules.enable(conn, often["id"], now=T0 + 60 * MINUTE)
        assert enabled["next_run_at"] == T0 + 65 * MINUTE  # strictly after now
        assert schedules.disable(conn, often["id"])["next_run_at"] is None
    with db.begin() as conn:
        assert schedules.get(conn, often["id"])["next_run_at"] is None
        assert schedules.get(conn, paris["id"]) == repaid


def test_due_and_mark_ran(db):
    with db.begin() as conn:
        often = schedules.create(conn, "often", "*/5 * * * *", "k", now=T0)
        daily = schedules.create(conn, "daily", "0 0 * * *", "k", now=T0)
        schedules.create(conn, "off", "* * * * *", "k", enabled=False, now=T0)
    with db.begin() as conn:
        assert schedules.due(conn, T0) == []
        assert [s["name"] for s in schedules.due(conn, T0 + 5 * MINUTE)] == ["often"]
        tomorrow = T0 + timedelta(hours=12)
        assert [s["name"] for s in schedules.due(conn, tomorrow)] == ["often", "daily"]
        # Ran a little before the planned time: the next run is the one after the planned one.
        early = schedules.mark_ran(conn, often["id"], T0 + 4 * MINUTE)
        assert early["last_run_at"] == T0 + 4 * MINUTE
        assert early["next_run_at"] == T0 + 10 * MINUTE
        # After a long outage: one run, then the next slot after it (no backlog).
        late = schedules.mark_ran(conn, often["id"], T0 + timedelta(days=2, minutes=1))
        assert late["next_run_at"] == T0 + timedelta(days=2, minutes=5)
        assert schedules.get(conn, often["id"]) == late
        assert late["updated_at"] == T0 + timedelta(days=2, minutes=1)
        assert schedules.get(conn, daily["id"])["last_run_at"] is None
        with pytest.raises(NotFoundError):
            schedules.mark_ran(conn, "gone", T0)
        with pytest.raises(InvalidError, match="ran_at"):
            schedules.mark_ran(conn, often["id"], datetime(2030, 1, 1))


def test_fire_due_enqueues_one_job_per_due_schedule(db):
    ws = new_workspace(db)
    with db.begin() as conn:
        often = schedules.create(
            conn, "often", "*/5 * * * *", "compact", job_payload={"all": True}, workspace_id=ws
        )
        schedules.update(conn, often["id"], now=T0, enabled=False)
        schedules.enable(conn, often["id"], now=T0)
        schedules.create(conn, "daily", "0 0 * * *", "prune", now=T0)
    with db.begin() as conn:
        assert schedules.fire_due(conn, T0) == []
        fired = schedules.fire_due(conn, T0 + 7 * MINUTE)
        assert schedules.fire_due(conn, T0 + 7 * MINUTE) == []  # already advanced
    assert len(fired) == 1
    job = fired[0]
    assert (job["kind"], job["payload"], job["workspace_id"]) == ("compact", {"all": True}, ws)
    assert job["schedule_id"] == often["id"] and job["status"] == "queued"
    assert job["run_after"] == T0 + 5 * MINUTE  # when it was meant to run
    with db.begin() as conn:
        after = schedules.get(conn, often["id"])
        assert after["last_run_at"] == T0 + 7 * MINUTE
        assert after["next_run_at"] == T0 + 10 * MINUTE
        assert jobs.list_jobs(conn, schedule_id=often["id"]).items == fired
        assert len(schedules.fire_due(conn, T0 + timedelta(days=3))) == 2
        assert len(jobs.list_jobs(conn).items) == 3


def test_two_servers_firing_at_once_enqueue_each_run_once(db):
    if db.driver != "postgres":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite has a single writer")
    with db.begin() as conn:
        schedules.create(conn, "often", "*/5 * * * *", "k", now=T0)
    fired, release = threading.Event(), threading.Event()

    def server_a() -> int:
        with db.begin() as conn:
            count = len(schedules.fire_due(conn, T0 + 5 * MINUTE))
            fired.set()
            assert release.wait(TIMEOUT)
            return count

    a = in_thread(server_a)
    try:
        assert fired.wait(TIMEOUT)
        with db.begin() as conn:
            conn.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            assert schedules.fire_due(conn, T0 + 5 * MINUTE) == []
    finally:
        release.set()
    assert a.result(TIMEOUT) == 1
    with db.begin() as conn:
        assert len(jobs.list_jobs(conn).items) == 1
        assert schedules.fire_due(conn, T0 + 5 * MINUTE) == []
