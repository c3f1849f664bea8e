"""persistence.events and persistence.webhooks on memory, SQLite and PostgreSQL: ids that
commit in order (a poller never skips one, even with concurrent writers), retention and the
expiry mark, deliveries queued with their events."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from persistence import events, notes, webhooks
from persistence.errors import InvalidError
from persistence.schema import background_tasks, note_events
from persistence.stores import background_tasks as jobs
from tests.persistence.test_notes import add_workspace


def test_note_changes_append_events_in_order(db):
    with db.begin() as conn:
        add_workspace(conn, "ws")
        notes.create_note(conn, workspace_id="ws", note_id="n", title="a")
        notes.rename_note(conn, "n", "b")
        notes.rename_note(conn, "n", "b")  # no change, no event
        notes.delete_note(conn, "n")
        notes.undelete_note(conn, "n")
    with db.read() as conn:
        rows = events.read(conn, 0)
        assert [row["kind"] for row in rows] == ["created", "renamed", "deleted", "restored"]
        assert [row["id"] for row in rows] == [1, 2, 3, 4]
        assert events.last_id(conn) == 4
        assert rows[1]["data"] == {"title": "b", "previous_title": "a"}
        assert events.read(conn, 2, limit=1)[0]["id"] == 3
        assert events.read(conn, 0, workspace_ids=["elsewhere"]) == []
    message = events.message(rows[0])
    assert message["type"] == "created" and message["note_id"] == "n" and message["id"] == 1
    with db.begin() as conn, pytest.raises(InvalidError):
        events.append(conn, "ws", "n", "exploded")


def test_a_rolled_back_event_leaves_no_hole(db):
    with db.begin() as conn:
        add_workspace(conn, "ws")
        events.append(conn, "ws", "n", "changed")
    with pytest.raises(RuntimeError), db.begin() as conn:
        events.append(conn, "ws", "n", "changed")
        raise RuntimeError("rolled back")
    with db.begin() as conn:
        events.append(conn, "ws", "n", "changed")
    with db.read() as conn:
        assert [row["id"] for row in events.read(conn, 0)] == [1, 2]


def test_concurrent_writers_never_make_a_poller_skip_an_id(db):
    if db.driver == "memory":
        pytest.skip("one connection: writers cannot overlap")
    with db.begin() as conn:
        add_workspace(conn, "ws")
    writers, per_writer = 4, 25
    done = threading.Event()
    seen: list[int] = []
    failed: list[sa.exc.SQLAlchemyError] = []

    def write() -> None:
        try:
            for _ in range(per_writer):
                with db.begin() as conn:
                    events.append(conn, "ws", "n", "changed")
        except sa.exc.SQLAlchemyError as exc:
            failed.append(exc)

    def poll() -> None:
        last = 0
        while True:
            finished = done.is_set()
            with db.read() as conn:
                rows = events.read(conn, last)
            for row in rows:
                seen.append(row["id"])
                last = row["id"]
            if finished and not rows:
                return
            if not rows:
                # A poller that never sleeps holds the GIL the writers need between their
                # SQLite calls: on a busy machine one of them then waited out SQLite's busy
                # timeout behind the others (its lock is not fair) and failed.
                time.sleep(0.001)

    poller = threading.Thread(target=poll)
    poller.start()
    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    poller.join(30)
    assert not failed, f"a writer failed: {failed[0]!r}"
    assert seen == list(range(1, writers * per_writer + 1))


def test_retention_prunes_and_marks_what_expired(db):
    old = datetime(2020, 1, 1, tzinfo=UTC)
    with db.begin() as conn:
        add_workspace(conn, "ws")
        for i in range(3):
            events.append(conn, "ws", "n", "changed", now=old + timedelta(days=i))
        events.append(conn, "ws", "n", "changed")
    with db.begin() as conn:
        assert events.prune(conn, old + timedelta(days=1, hours=1)) == 2
        assert events.pruned_through(conn) == 2
        assert events.prune(conn, old) == 0
        assert events.pruned_through(conn) == 2
        assert [row["id"] for row in events.read(conn, 0)] == [3, 4]
        conn.execute(sa.delete(note_events))
    with db.begin() as conn:
        # An emptied log keeps counting: ids are never handed out twice.
        assert events.append(conn, "ws", "n", "changed")["id"] == 5


def test_events_queue_one_delivery_per_enabled_webhook(db):
    with db.begin() as conn:
        add_workspace(conn, "ws")
        add_workspace(conn, "other")
        hook = webhooks.create(conn, "ws", "https://example.com/a", "s" * 16, max_attempts=3)
        paused = webhooks.create(conn, "ws", "https://example.com/b", "s" * 16)
        webhooks.set_enabled(conn, paused["id"], False)
        webhooks.create(conn, "other", "https://example.com/c", "s" * 16)
        assert "secret" not in hook
        events.append(conn, "ws", "n", "created")
    with db.read() as conn:
        (delivery,) = webhooks.list_deliveries(conn, hook["id"]).items
        assert (delivery["status"], delivery["attempts"], delivery["event_id"]) == ("pending", 0, 1)
        job = conn.execute(sa.select(background_tasks)).mappings().one()
        assert job["kind"] == webhooks.JOB_KIND and job["max_attempts"] == 3
        assert job["payload"] == {"delivery_id": delivery["id"]}
        assert webhooks.list_deliveries(conn, paused["id"]).items == []
    with db.begin() as conn:
        webhooks.record_attempt(
            conn, delivery["id"], succeeded=False, final=False, status_code=500, error="boom"
        )
        got = webhooks.get_delivery(conn, delivery["id"])
        assert (got["status"], got["attempts"], got["last_error"]) == ("retrying", 1, "boom")
        webhooks.record_attempt(
            conn, delivery["id"], succeeded=True, final=False, status_code=200, error=None
        )
        got = webhooks.get_delivery(conn, delivery["id"])
        assert (got["status"], got["attempts"]) == ("succeeded", 2) and got["delivered_at"]
        later = datetime.now(UTC) + timedelta(days=1)
        assert webhooks.prune_deliveries(conn, later) == 1
        webhooks.delete(conn, hook["id"])
        assert jobs.list_jobs(conn).items  # the job stays; it finds nothing and ends


@pytest.mark.parametrize(
    "url",
    ["ftp://x.example/", "x.example/hook", "http://", "http://x.example:0x50/", "http://a b/", ""],
)
def test_webhook_urls_are_checked(url):
    with pytest.raises(InvalidError):
        webhooks.check_url(url)
