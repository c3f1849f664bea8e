"""What background jobs do, by kind. Handlers are synchronous and run in a worker thread;
each opens its own transactions, so a long job never holds one lock for its whole run.

Job kinds:
    compact_note  {"note_id"}: fold one note's update log into a snapshot.
    compact       {"min_updates"}: compact every note whose log holds at least that many rows.
    prune         {}: apply the retention policy (expired versions, long-deleted notes, old jobs,
                  the change feed's expired events and old webhook deliveries).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from persistence import compaction, events, retention, webhooks
from persistence.engine import Database
from persistence.errors import ConflictError, InvalidError, NotFoundError
from persistence.stores import background_tasks, schedules

from .settings import Settings

log = logging.getLogger("coscribe.jobs")


@dataclass(frozen=True)
class JobContext:
    db: Database
    settings: Settings


class PermanentError(Exception):
    """Retrying will not help (bad payload, unknown kind): the job fails at once."""


class RetryLater(Exception):
    """An expected failure (a webhook receiver down): retried with backoff, logged in one
    line without a traceback."""


Handler = Callable[[JobContext, dict[str, Any]], dict[str, Any]]


def compact_note(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    note_id = payload.get("note_id")
    if not isinstance(note_id, str):
        raise PermanentError("payload needs a note_id string")
    try:
        result = compaction.compact_note(ctx.db, note_id)
    except (NotFoundError, InvalidError) as exc:
        raise PermanentError(str(exc)) from exc
    return {
        "note_id": note_id,
        "merged": result.merged,
        "rows_before": result.rows_before,
        "rows_after": result.rows_after,
        "bytes_before": result.bytes_before,
        "bytes_after": result.bytes_after,
    }


def compact(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    min_updates = payload.get("min_updates", ctx.settings.compact_after_updates)
    if not isinstance(min_updates, int) or min_updates < 1:
        raise PermanentError("min_updates must be a whole number of at least 1")
    # Notes deleted meanwhile, or whose data does not apply, are skipped: nothing to retry.
    return compaction.compact_notes(ctx.db, min_updates=min_updates).as_dict()


def prune(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    # The periods were checked when the server started.
    policy = ctx.settings.retention_policy
    # prune_batched opens its own short transactions, so the server's flushes keep going.
    report = retention.prune_batched(ctx.db, policy)
    for problem in report.problems:
        log.warning("retention: %s", problem)
    return {**report.as_dict(), **prune_feed(ctx.db, ctx.settings)}


def prune_feed(db: Database, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Events past event_retention_s, and finished webhook deliveries past job_retention_s."""
    now = now or datetime.now(UTC)
    with db.begin() as conn:
        removed = {
            "events": events.prune(conn, now - timedelta(seconds=settings.event_retention_s))
        }
        if settings.job_retention_s:
            cutoff = now - timedelta(seconds=settings.job_retention_s)
            removed["webhook_deliveries"] = webhooks.prune_deliveries(conn, cutoff)
    return removed


HANDLERS: dict[str, Handler] = {"compact_note": compact_note, "compact": compact, "prune": prune}


def enqueue_compactions(db: Database, note_ids: list[str]) -> None:
    """Queue one compaction per note (the server calls this when a log passes the threshold)."""
    with db.begin() as conn:
        for note_id in note_ids:
            background_tasks.enqueue(conn, "compact_note", {"note_id": note_id})


BUILTIN_SCHEDULES = {
    # name: (settings attribute holding the cron expression, job kind, payload)
    "builtin-compaction": ("compaction_cron", "compact", {}),
    "builtin-retention": ("retention_cron", "prune", {}),
}


def ensure_builtin_schedules(db: Database, settings: Settings) -> None:
    """Create the built-in schedules if they are missing. An operator's later changes to them
    (another cron, disabled) are kept: they are only ever created, never reset."""
    now = datetime.now(UTC)
    for name, (attribute, kind, payload) in BUILTIN_SCHEDULES.items():
        cron = getattr(settings, attribute)
        try:
            with db.begin() as conn:
                if schedules.find_by_name(conn, name) is not None:
                    continue
                schedules.create(conn, name, cron, kind, job_payload=payload, now=now)
        except ConflictError:
            # Another instance starting at the same time on the same database made it.
            continue
        log.info("created schedule %s (%s, %s)", name, cron, kind)
