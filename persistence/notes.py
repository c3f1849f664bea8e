"""Note rows: create, find, list, rename, delete and undelete notes.

A note's content lives in its update log and snapshots (update_log.py), compacted by
compaction.py; versions.py names snapshots. Every function takes the caller's Connection and
never commits: the caller owns the transaction. Input is checked before any SQL runs, and the
driver errors a race can still cause come back as StoreErrors.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from functools import partial

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from . import events, limits, search
from .checks import as_now, check_id, text
from .errors import ConflictError, NotFoundError
from .paging import DEFAULT_LIMIT, Page, Row, keyset_page
from .schema import note_snapshots, note_updates, notes, workspaces

MAX_TITLE_CHARS = limits.TITLE_CHARS

check_note_id = partial(check_id, "note id")
_title = text(MAX_TITLE_CHARS)


def find_note(conn: sa.Connection, note_id: str, include_deleted: bool = False) -> Row | None:
    """The note's row (id, workspace_id, title, last_seq, timestamps), or None."""
    query = sa.select(notes).where(notes.c.id == check_note_id(note_id))
    if not include_deleted:
        query = query.where(notes.c.deleted_at.is_(None))
    row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def existing_ids(conn: sa.Connection, note_ids: Iterable[str]) -> set[str]:
    """Which of these notes exist and are not deleted."""
    query = sa.select(notes.c.id).where(
        notes.c.id.in_(sorted(set(note_ids))), notes.c.deleted_at.is_(None)
    )
    return set(conn.execute(query).scalars())


def get_note(conn: sa.Connection, note_id: str, include_deleted: bool = False) -> Row:
    """The note's row, or NotFoundError (also for a soft-deleted note, unless included)."""
    row = find_note(conn, note_id, include_deleted)
    if row is None:
        raise NotFoundError(f"note {note_id!r} not found")
    return row


def create_note(
    conn: sa.Connection,
    *,
    workspace_id: str,
    note_id: str | None = None,
    title: str = "",
    now: datetime | None = None,
) -> Row:
    """Create an empty note (uuid4 hex id unless given); ConflictError if the id is taken."""
    note_id = uuid.uuid4().hex if note_id is None else check_note_id(note_id)
    check_id("workspace id", workspace_id)
    title = _title("note title", title)
    now = as_now(now)
    found = conn.execute(sa.select(workspaces.c.id).where(workspaces.c.id == workspace_id)).first()
    if found is None:
        raise NotFoundError(f"workspace {workspace_id!r} not found")
    if conn.execute(sa.select(notes.c.id).where(notes.c.id == note_id)).first() is not None:
        raise ConflictError(f"note {note_id!r} already exists")
    statement = sa.insert(notes).values(
        id=note_id,
        workspace_id=workspace_id,
        title=title,
        last_seq=0,
        created_at=now,
        updated_at=now,
    )
    try:
        with conn.begin_nested():
            conn.execute(statement)
    except sa_exc.IntegrityError:
        # Our checks passed, so a concurrent transaction (PostgreSQL) took the id or deleted
        # the workspace meanwhile; the savepoint undid our insert.
        raise ConflictError(f"note {note_id!r} clashed with a concurrent change; retry") from None
    events.append(conn, workspace_id, note_id, "created", {"title": title}, now=now)
    return get_note(conn, note_id)


def list_notes(
    conn: sa.Connection,
    workspace_id: str,
    *,
    deleted: bool = False,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page:
    """The workspace's notes, most recently changed first, each with its stored ``size`` in
    bytes (newest snapshot plus the updates after it). ``deleted=True`` lists the deleted."""
    check_id("workspace id", workspace_id)
    if (
        conn.execute(sa.select(workspaces.c.id).where(workspaces.c.id == workspace_id)).first()
        is None
    ):
        raise NotFoundError(f"workspace {workspace_id!r} not found")
    latest = note_snapshots.alias("latest")
    newest = (
        sa.select(latest.c.id)
        .where(latest.c.note_id == notes.c.id)
        .order_by(latest.c.through_seq.desc(), latest.c.id.desc())
        .limit(1)
        .correlate(notes)
        .scalar_subquery()
    )
    snapshot_bytes = (
        sa.select(sa.func.length(note_snapshots.c.state))
        .where(note_snapshots.c.id == newest)
        .correlate(notes)
        .scalar_subquery()
    )
    base_seq = (
        sa.select(note_snapshots.c.through_seq)
        .where(note_snapshots.c.id == newest)
        .correlate(notes)
        .scalar_subquery()
    )
    log_bytes = (
        sa.select(sa.func.sum(sa.func.length(note_updates.c.update)))
        .where(
            note_updates.c.note_id == notes.c.id,
            note_updates.c.seq > sa.func.coalesce(base_seq, 0),
        )
        .correlate(notes)
        .scalar_subquery()
    )
    size = (sa.func.coalesce(snapshot_bytes, 0) + sa.func.coalesce(log_bytes, 0)).label("size")
    deleted_clause = notes.c.deleted_at.is_not(None) if deleted else notes.c.deleted_at.is_(None)
    query = sa.select(notes, size).where(notes.c.workspace_id == workspace_id, deleted_clause)
    page = keyset_page(conn, query, ((notes.c.updated_at, True), (notes.c.id, True)), limit, cursor)
    for item in page.items:
        item["size"] = int(item["size"] or 0)
    return page


def rename_note(
    conn: sa.Connection, note_id: str, title: str, *, now: datetime | None = None
) -> Row:
    before = get_note(conn, note_id)
    title = _title("note title", title)
    now = as_now(now)
    conn.execute(sa.update(notes).where(notes.c.id == note_id).values(title=title, updated_at=now))
    search.retitle(conn, note_id, title)
    if title != before["title"]:
        data = {"title": title, "previous_title": before["title"]}
        events.append(conn, before["workspace_id"], note_id, "renamed", data, now=now)
    return get_note(conn, note_id)


def delete_note(conn: sa.Connection, note_id: str, *, now: datetime | None = None) -> Row:
    """Soft-delete: the note and its history stay until retention purges them."""
    note = get_note(conn, note_id)
    now = as_now(now)
    conn.execute(sa.update(notes).where(notes.c.id == note_id).values(deleted_at=now))
    events.append(conn, note["workspace_id"], note_id, "deleted", now=now)
    return get_note(conn, note_id, include_deleted=True)


def undelete_note(conn: sa.Connection, note_id: str) -> Row:
    note = get_note(conn, note_id, include_deleted=True)
    if note["deleted_at"] is None:
        raise ConflictError(f"note {note_id!r} is not deleted")
    conn.execute(sa.update(notes).where(notes.c.id == note_id).values(deleted_at=None))
    events.append(conn, note["workspace_id"], note_id, "restored", {"title": note["title"]})
    return get_note(conn, note_id)
