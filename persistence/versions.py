"""Versions: named snapshots of a note, made on demand, automatically or by a restore.

Like every snapshot a version is also a valid base for load; making one deletes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from crdt import document

from . import limits
from .checks import as_now, text
from .errors import InvalidError, NotFoundError
from .locks import lock_note
from .notes import check_note_id, get_note
from .paging import Page, Row, keyset_page
from .schema import note_snapshots
from .update_log import MAX_SEQ, insert_snapshot, merge_log, read_log, snapshot_row

MAX_LABEL_CHARS = limits.LABEL_CHARS
VERSION_KINDS = ("manual", "auto", "restore")  # "compaction" is written by compaction only

_label = text(MAX_LABEL_CHARS)

_VERSION_COLUMNS = (
    note_snapshots.c.id,
    note_snapshots.c.note_id,
    note_snapshots.c.through_seq,
    note_snapshots.c.kind,
    note_snapshots.c.label,
    note_snapshots.c.created_at,
    sa.func.length(note_snapshots.c.state).label("size"),
)


def auto_label(names: list[str]) -> str | None:
    """The label of an automatic version: who was in the note (None: nobody said)."""
    if not names:
        return None
    who = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    verb = "was" if len(names) == 1 else "were"
    label = f"Saved automatically while {who} {verb} editing"
    return (
        label if len(label) <= MAX_LABEL_CHARS else "Saved automatically while people were editing"
    )


def create_version(
    conn: sa.Connection,
    note_id: str,
    *,
    label: str | None = None,
    kind: str = "manual",
    now: datetime | None = None,
) -> Row:
    """Snapshot the note's current state (through the last stored seq), deleting nothing.

    Like every snapshot it is also a valid base for load. Returns the version's row (as
    list_versions shows it).
    """
    check_note_id(note_id)
    if label is not None:
        label = _label("version label", label)
    if not isinstance(kind, str) or kind not in VERSION_KINDS:
        raise InvalidError(f"invalid version kind: expected one of {', '.join(VERSION_KINDS)}")
    now = as_now(now)
    get_note(conn, note_id)
    base, log = read_log(conn, note_id)
    if log:
        state, vector = merge_log(note_id, base, log)
        through = log[-1][0]
    elif base is not None:
        state, vector, through = base["state"], base["state_vector"], base["through_seq"]
    else:
        state, vector = document.merge(None, [])
        through = 0
    row = snapshot_row(note_id, through, state, vector, kind, label, now)
    version_id = insert_snapshot(conn, row)
    return get_version(conn, note_id, version_id, include_state=False)


def create_auto_version(
    conn: sa.Connection,
    note_id: str,
    interval_s: float,
    *,
    label: str | None = None,
    now: datetime | None = None,
) -> Row | None:
    """The automatic version of an edited note, unless one was taken in the last half
    interval: several server processes editing the note (a cluster) take one between them.
    None when one was recent."""
    now = as_now(now)
    lock_note(conn, "version", note_id)
    newest = conn.execute(
        sa.select(sa.func.max(note_snapshots.c.created_at)).where(
            note_snapshots.c.note_id == note_id, note_snapshots.c.kind == "auto"
        )
    ).scalar_one_or_none()
    if newest is not None and _aware(newest) > now - timedelta(seconds=interval_s / 2):
        return None
    return create_version(conn, note_id, kind="auto", label=label, now=now)


def _aware(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes; every time stored is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def list_versions(conn: sa.Connection, note_id: str) -> list[Row]:
    """Every snapshot of the note, newest first, without the state (``size`` is its bytes)."""
    get_note(conn, note_id)
    query = (
        sa.select(*_VERSION_COLUMNS)
        .where(note_snapshots.c.note_id == note_id)
        .order_by(note_snapshots.c.id.desc())
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def page_versions(
    conn: sa.Connection, note_id: str, *, limit: int, cursor: str | None = None
) -> Page:
    """One page of the note's snapshots, newest first (pass ``next_cursor`` back for more)."""
    get_note(conn, note_id)
    query = sa.select(*_VERSION_COLUMNS).where(note_snapshots.c.note_id == note_id)
    return keyset_page(conn, query, [(note_snapshots.c.id, True)], limit, cursor)


def get_version(
    conn: sa.Connection, note_id: str, version_id: int, *, include_state: bool = True
) -> Row:
    """One snapshot of the note, with ``state`` and ``state_vector`` unless told otherwise."""
    if isinstance(version_id, bool) or not isinstance(version_id, int):
        raise InvalidError(f"invalid version id: expected an integer, got {version_id!r}")
    get_note(conn, note_id)
    columns = list(_VERSION_COLUMNS)
    if include_state:
        columns += [note_snapshots.c.state, note_snapshots.c.state_vector]
    row = None
    if 1 <= version_id <= MAX_SEQ:
        query = sa.select(*columns).where(
            note_snapshots.c.note_id == note_id, note_snapshots.c.id == version_id
        )
        row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFoundError(f"version {version_id} of note {note_id!r} not found")
    version = dict(row)
    if include_state:
        version["state"] = bytes(version["state"])
        version["state_vector"] = bytes(version["state_vector"])
    return version
