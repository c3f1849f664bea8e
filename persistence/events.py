"""The change feed's durable log: what happened to notes, in order, readable by any process.

Event ids come from the "event" row of the counters table, bumped inside the transaction
that appends the event (an upsert, so an emptied table starts again where it was). The row
lock is held to commit, so events commit in id order and ids have no holes (a rolled-back
transaction gives its ids back with the counter): a reader that has seen id N and asks for
``id > N`` never misses one, whichever process wrote it. Retention removes old events and
records the highest id it removed, so a client resuming from before that learns it must
resynchronize instead of silently missing events.

Appending an event also queues a delivery to every enabled webhook of its workspace, in the
same transaction (persistence/webhooks.py), and on PostgreSQL sends a NOTIFY on
NOTIFY_CHANNEL (delivered at commit) that other processes' feeds LISTEN for.

Every function takes the caller's Connection and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .checks import as_now, check_id
from .errors import InvalidError
from .paging import Row
from .schema import counters, note_events

KINDS = ("created", "renamed", "deleted", "restored", "changed")
EVENT_COUNTER = "event"
PRUNED_COUNTER = "event_pruned"
NOTIFY_CHANNEL = "coscribe_events"

_BUMP = sa.text(
    "INSERT INTO counters (name, value) VALUES (:name, :count) "
    "ON CONFLICT (name) DO UPDATE SET value = counters.value + :count RETURNING value"
)
_RAISE = sa.text(
    "INSERT INTO counters (name, value) VALUES (:name, :value) "
    "ON CONFLICT (name) DO UPDATE SET value = "
    "CASE WHEN counters.value > :value THEN counters.value ELSE :value END"
)


_INSERT = sa.insert(note_events)


def _allocate(conn: sa.Connection, count: int) -> int:
    """Take ``count`` ids; returns the last (they are last-count+1 .. last)."""
    return int(conn.execute(_BUMP, {"name": EVENT_COUNTER, "count": count}).scalar_one())


def append(
    conn: sa.Connection,
    workspace_id: str,
    note_id: str,
    kind: str,
    data: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> Row:
    """Append one event; returns its row."""
    return append_many(conn, [(workspace_id, note_id, kind, data or {})], now=now)[0]


def append_many(
    conn: sa.Connection,
    events: Iterable[tuple[str, str, str, dict[str, Any]]],
    *,
    now: datetime | None = None,
) -> list[Row]:
    """Append (workspace_id, note_id, kind, data) events in this order, with consecutive ids.
    Call it late in the transaction: the counter's row lock is held until commit."""
    from . import webhooks

    events = list(events)
    if not events:
        return []
    for workspace_id, note_id, kind, _ in events:
        check_id("workspace id", workspace_id)
        check_id("note id", note_id)
        if kind not in KINDS:
            raise InvalidError(f"unknown event kind {kind!r}")
    now = as_now(now)
    last = _allocate(conn, len(events))
    first = last - len(events) + 1
    rows = [
        {
            "id": first + offset,
            "workspace_id": workspace_id,
            "note_id": note_id,
            "kind": kind,
            "data": data,
            "created_at": now,
        }
        for offset, (workspace_id, note_id, kind, data) in enumerate(events)
    ]
    conn.execute(_INSERT, rows)
    webhooks.queue_deliveries(conn, rows, now=now)
    if conn.dialect.name == "postgresql":
        # A wake-up for the other instances' feeds, sent by PostgreSQL at commit (and not at
        # all on rollback); the table stays the truth, readers still poll it.
        conn.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
    return rows


def _counter(conn: sa.Connection, name: str) -> int:
    value = conn.execute(sa.select(counters.c.value).where(counters.c.name == name)).scalar()
    return int(value or 0)


def last_id(conn: sa.Connection) -> int:
    """The last event id handed out (0: none yet)."""
    return _counter(conn, EVENT_COUNTER)


def pruned_through(conn: sa.Connection) -> int:
    """The highest event id retention removed (0: none): resuming after an id below it
    would miss events."""
    return _counter(conn, PRUNED_COUNTER)


def read(
    conn: sa.Connection,
    after: int,
    *,
    limit: int = 500,
    workspace_ids: list[str] | None = None,
) -> list[Row]:
    """Events with ids above ``after``, oldest first (only these workspaces', if given)."""
    query = sa.select(note_events).where(note_events.c.id > after)
    if workspace_ids is not None:
        query = query.where(note_events.c.workspace_id.in_(workspace_ids))
    query = query.order_by(note_events.c.id).limit(limit)
    return [dict(row) for row in conn.execute(query).mappings()]


def get(conn: sa.Connection, event_id: int) -> Row | None:
    row = conn.execute(sa.select(note_events).where(note_events.c.id == event_id)).mappings()
    found = row.first()
    return None if found is None else dict(found)


def prune(conn: sa.Connection, older_than: datetime) -> int:
    """Remove events created before ``older_than``; returns how many."""
    cutoff = as_now(older_than)
    highest = conn.execute(
        sa.select(sa.func.max(note_events.c.id)).where(note_events.c.created_at < cutoff)
    ).scalar()
    if highest is None:
        return 0
    # Ids only grow with time, so everything up to the newest expired one goes: nothing
    # newer is left behind a hole.
    removed = conn.execute(sa.delete(note_events).where(note_events.c.id <= highest)).rowcount
    conn.execute(_RAISE, {"name": PRUNED_COUNTER, "value": int(highest)})
    return removed


def message(row: Row, *, diff: bool = True) -> Row:
    """An event as clients receive it (SSE data, webhook body): the patch only if asked."""
    data = dict(row["data"] or {})
    if not diff:
        data.pop("patch", None)
    created = row["created_at"]
    return {
        "id": row["id"],
        "type": row["kind"],
        "note_id": row["note_id"],
        "workspace_id": row["workspace_id"],
        "at": created.isoformat() if isinstance(created, datetime) else created,
        **data,
    }
