"""The retention job also removes the change feed's expired events (marking them, so resuming
from before them gets a resync) and finished webhook deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from persistence import events, webhooks
from server.jobs import JobContext, prune, prune_feed
from server.settings import Settings
from tests.persistence.test_notes import add_workspace


def test_prune_removes_expired_events_and_old_deliveries(db):
    with db.begin() as conn:
        add_workspace(conn, "ws")
        hook = webhooks.create(conn, "ws", "https://example.com/hook", "s" * 16)
        first = events.append(conn, "ws", "n", "created")
        events.append(conn, "ws", "n", "changed")
        (delivery, _) = webhooks.list_deliveries(conn, hook["id"]).items
        webhooks.record_attempt(
            conn, delivery["id"], succeeded=True, final=False, status_code=200, error=None
        )
    settings = Settings(event_retention_s=3600, job_retention_s=3600)
    assert prune_feed(db, settings) == {"events": 0, "webhook_deliveries": 0}
    later = datetime.now(UTC) + timedelta(hours=2)
    assert prune_feed(db, settings, now=later) == {"events": 2, "webhook_deliveries": 1}
    with db.read() as conn:
        assert events.read(conn, 0) == []
        assert events.pruned_through(conn) == first["id"] + 1
        assert len(webhooks.list_deliveries(conn, hook["id"]).items) == 1  # still pending
    report = prune(JobContext(db, settings), {})
    assert report["events"] == 0 and "webhook_deliveries" in report
