"""A note's durable state: an append-only update log plus snapshots (DESIGN section 3).

Every function takes the caller's Connection and never commits: the caller owns the
transaction. Input is checked before any SQL runs, and the driver errors a race can still
cause come back as StoreErrors.

Invariants the concurrency story rests on:

* Seqs are allocated only by append_updates, with ``UPDATE notes SET last_seq = last_seq + n``
  (a row lock held to commit). Appends of one note therefore commit in seq order, so what a
  reader sees of a note's log is always a prefix of it, and a seq is never reused.
* A snapshot with ``through_seq = S`` holds every update with ``seq <= S``. Load reads the
  newest one (highest through_seq, then newest id) and the updates after it; update rows at
  or below that through_seq are never read again. Whoever prunes snapshots must keep the
  newest one of each note.
* Reading a base snapshot and the updates after it is one SQL statement: under PostgreSQL's
  READ COMMITTED two statements could straddle a compaction's commit and miss its rows.
* Compaction deletes only rows the newest snapshot holds (the one it writes, or the one it
  found), and none above max_seq; anything appended meanwhile has a larger seq and survives.
  On PostgreSQL two compactions of one note exclude each other with an advisory lock; on
  SQLite every write transaction is already exclusive.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pycrdt
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from crdt import document
from crdt.validation import DEFAULT_LIMITS

from .errors import ConflictError, InvalidError, NotFoundError, StoreError
from .schema import note_snapshots, note_updates, notes, workspaces
from .stores.base import DEFAULT_LIMIT, Page, check_id, keyset_page, text

MAX_UPDATE_BYTES = 16 * 1024 * 1024
MAX_TITLE_CHARS = 500  # notes.title
MAX_LABEL_CHARS = 200  # note_snapshots.label
VERSION_KINDS = ("manual", "auto", "restore")  # "compaction" is written by compact_note only
_MAX_BIGINT = 2**63 - 1

Row = dict[str, Any]


@dataclass(frozen=True)
class StoredNote:
    """What load reads: the newest snapshot (if any) and every update after it, by seq."""

    note_id: str
    workspace_id: str
    state: bytes | None
    through_seq: int
    updates: list[tuple[int, bytes]]
    last_seq: int  # the highest seq allocated so far (at least the last one in ``updates``)


@dataclass(frozen=True)
class CompactionResult:
    note_id: str
    through_seq: int  # the note's newest snapshot now holds every update up to this seq
    merged: int  # update rows folded into the new snapshot (0: nothing to do)
    deleted: int  # update rows deleted: the merged ones plus any an older snapshot covered
    snapshot_id: int | None  # the new snapshot, None when nothing was merged
    rows_before: int  # rows a load read for seqs <= through_seq before: base snapshot + merged
    bytes_before: int
    rows_after: int  # ... and after: the one new snapshot
    bytes_after: int

    @property
    def compacted(self) -> bool:
        return self.snapshot_id is not None


# --- checks ------------------------------------------------------------------------------------


_note_id = partial(check_id, "note id")
_title = text(MAX_TITLE_CHARS)
_label = text(MAX_LABEL_CHARS)


def _now(now: Any) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise InvalidError(f"invalid now: expected a timezone-aware datetime, got {now!r}")
    return now.astimezone(UTC)


def _update_bytes(value: Any, index: int) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidError(f"update {index}: expected bytes, got {type(value).__name__}")
    data = bytes(value)
    if not data:
        raise InvalidError(f"update {index}: empty")
    if len(data) > MAX_UPDATE_BYTES:
        raise InvalidError(
            f"update {index}: {len(data)} bytes, larger than the limit of {MAX_UPDATE_BYTES}"
        )
    return data


def _seq(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_BIGINT:
        raise InvalidError(f"invalid {what}: expected an integer >= 0, got {value!r}")
    return value


# --- notes -------------------------------------------------------------------------------------


def find_note(conn: sa.Connection, note_id: str, include_deleted: bool = False) -> Row | None:
    """The note's row (id, workspace_id, title, last_seq, timestamps), or None."""
    query = sa.select(notes).where(notes.c.id == _note_id(note_id))
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
    note_id = uuid.uuid4().hex if note_id is None else _note_id(note_id)
    check_id("workspace id", workspace_id)
    title = _title("note title", title)
    now = _now(now)
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
    get_note(conn, note_id)
    conn.execute(
        sa.update(notes)
        .where(notes.c.id == note_id)
        .values(title=_title("note title", title), updated_at=_now(now))
    )
    return get_note(conn, note_id)


def delete_note(conn: sa.Connection, note_id: str, *, now: datetime | None = None) -> Row:
    """Soft-delete: the note and its history stay until retention purges them."""
    get_note(conn, note_id)
    now = _now(now)
    conn.execute(sa.update(notes).where(notes.c.id == note_id).values(deleted_at=now))
    return get_note(conn, note_id, include_deleted=True)


def undelete_note(conn: sa.Connection, note_id: str) -> Row:
    note = get_note(conn, note_id, include_deleted=True)
    if note["deleted_at"] is None:
        raise ConflictError(f"note {note_id!r} is not deleted")
    conn.execute(sa.update(notes).where(notes.c.id == note_id).values(deleted_at=None))
    return get_note(conn, note_id)


def log_sizes(
    conn: sa.Connection, *, note_ids: Sequence[str] | None = None, min_updates: int = 1
) -> list[Row]:
    """Notes whose update log holds at least ``min_updates`` rows: ``{note_id, rows, bytes}``,
    most rows first. These are what compaction would fold into a snapshot."""
    query = (
        sa.select(
            note_updates.c.note_id,
            sa.func.count().label("rows"),
            sa.func.sum(sa.func.length(note_updates.c.update)).label("bytes"),
        )
        .group_by(note_updates.c.note_id)
        .having(sa.func.count() >= max(int(min_updates), 1))
        .order_by(sa.func.count().desc(), note_updates.c.note_id)
    )
    if note_ids is not None:
        query = query.where(note_updates.c.note_id.in_([_note_id(n) for n in note_ids]))
    return [
        {"note_id": row.note_id, "rows": int(row.rows), "bytes": int(row.bytes or 0)}
        for row in conn.execute(query)
    ]


# --- the update log ------------------------------------------------------------------------------


def append_update(
    conn: sa.Connection, note_id: str, update: bytes, *, now: datetime | None = None
) -> int:
    """Append one update; returns its seq."""
    return append_updates(conn, note_id, [update], now=now)[0]


def append_updates(
    conn: sa.Connection, note_id: str, updates: Sequence[bytes], *, now: datetime | None = None
) -> list[int]:
    """Append updates in order (group commit); returns their seqs, consecutive and increasing.

    NotFoundError for an unknown or soft-deleted note; InvalidError for an empty or oversize
    update (nothing is written then). The bytes are stored as given: callers store the
    update their Doc produced (see crdt.document.validate_update for foreign bytes).
    """
    _note_id(note_id)
    if isinstance(updates, bytes | bytearray | memoryview | str):
        raise InvalidError("updates: expected a sequence of updates, got a single value")
    payloads = [_update_bytes(update, index) for index, update in enumerate(updates)]
    now = _now(now)
    if not payloads:
        get_note(conn, note_id)
        return []
    count = len(payloads)
    try:
        # A savepoint, so that a failure leaves neither rows nor a bumped counter behind even
        # if the caller goes on with its transaction.
        with conn.begin_nested():
            # The row lock taken here is held until the caller commits: appenders of one note
            # queue up behind it, so seqs commit in order (see the module docstring).
            last = conn.execute(
                sa.update(notes)
                .where(notes.c.id == note_id, notes.c.deleted_at.is_(None))
                .values(last_seq=notes.c.last_seq + count, updated_at=now)
                .returning(notes.c.last_seq)
            ).scalar_one_or_none()
            if last is None:
                raise NotFoundError(f"note {note_id!r} not found")
            first = last - count + 1
            rows = [
                {"note_id": note_id, "seq": first + offset, "update": payload, "created_at": now}
                for offset, payload in enumerate(payloads)
            ]
            conn.execute(sa.insert(note_updates), rows)
    except sa_exc.IntegrityError:
        # Only rows written behind append_updates' back can clash with an allocated seq.
        raise ConflictError(f"note {note_id!r}: allocated seqs are already taken") from None
    return list(range(first, last + 1))


def append_batch(
    conn: sa.Connection, batch: Mapping[str, Sequence[bytes]], *, now: datetime | None = None
) -> dict[str, StoreError]:
    """Group commit for many notes at once: one counter UPDATE and one INSERT for all of them.

    Returns the notes that could not be appended (unknown or soft-deleted: NotFoundError; bad
    updates: InvalidError), with nothing written for those; every other note's updates are
    appended in order, exactly as append_updates would. Raises only for a failure of the
    statements themselves, and then the caller must roll back (or fall back to
    append_updates per note, each in its own savepoint).
    """
    now = _now(now)
    failures: dict[str, StoreError] = {}
    payloads: dict[str, list[bytes]] = {}
    for note_id, updates in batch.items():
        try:
            _note_id(note_id)
            payloads[note_id] = [_update_bytes(u, i) for i, u in enumerate(updates)]
        except InvalidError as exc:
            failures[note_id] = exc
    counts = {note_id: len(p) for note_id, p in payloads.items() if p}
    if not counts:
        return failures
    # Row locks on every note, held to commit: appends of each note stay in seq order.
    allocated = dict(
        conn.execute(
            sa.update(notes)
            .where(notes.c.id.in_(list(counts)), notes.c.deleted_at.is_(None))
            .values(
                last_seq=notes.c.last_seq + sa.case(counts, value=notes.c.id),
                updated_at=now,
            )
            .returning(notes.c.id, notes.c.last_seq)
        ).all()
    )
    rows = []
    for note_id, count in counts.items():
        last = allocated.get(note_id)
        if last is None:
            failures[note_id] = NotFoundError(f"note {note_id!r} not found")
            continue
        first = last - count + 1
        rows += [
            {"note_id": note_id, "seq": first + offset, "update": payload, "created_at": now}
            for offset, payload in enumerate(payloads[note_id])
        ]
    if rows:
        conn.execute(sa.insert(note_updates), rows)
    return failures


def _read_log(
    conn: sa.Connection, note_id: str, max_seq: int | None = None
) -> tuple[Row | None, list[tuple[int, bytes]]]:
    """The newest snapshot and the updates after it (up to max_seq), in ONE statement.

    One statement sees one consistent database state on PostgreSQL too; reading the snapshot
    and then the updates could straddle a compaction's commit and miss the rows it merged.
    """
    base = (
        sa.select(
            note_snapshots.c.id,
            note_snapshots.c.through_seq,
            note_snapshots.c.state,
            note_snapshots.c.state_vector,
        )
        .where(note_snapshots.c.note_id == note_id)
        .order_by(note_snapshots.c.through_seq.desc(), note_snapshots.c.id.desc())
        .limit(1)
        .cte("base")
    )
    through = sa.func.coalesce(sa.select(base.c.through_seq).scalar_subquery(), 0)
    updates = sa.select(
        sa.literal(1).label("part"),
        sa.cast(sa.null(), sa.BigInteger()).label("snapshot_id"),
        note_updates.c.seq.label("seq"),
        note_updates.c.update.label("data"),
        sa.cast(sa.null(), sa.LargeBinary()).label("state_vector"),
    ).where(note_updates.c.note_id == note_id, note_updates.c.seq > through)
    if max_seq is not None:
        updates = updates.where(note_updates.c.seq <= max_seq)
    query = sa.union_all(
        sa.select(
            sa.literal(0).label("part"),
            base.c.id.label("snapshot_id"),
            base.c.through_seq.label("seq"),
            base.c.state.label("data"),
            base.c.state_vector.label("state_vector"),
        ),
        updates,
    ).order_by(sa.literal_column("part"), sa.literal_column("seq"))
    snapshot: Row | None = None
    log: list[tuple[int, bytes]] = []
    for part, snapshot_id, seq, data, vector in conn.execute(query):
        if part == 0:
            snapshot = {
                "id": snapshot_id,
                "through_seq": seq,
                "state": bytes(data),
                "state_vector": bytes(vector),
            }
        else:
            log.append((seq, bytes(data)))
    return snapshot, log


def load_note(conn: sa.Connection, note_id: str, include_deleted: bool = False) -> StoredNote:
    """The newest snapshot plus every update after it; NotFoundError for an unknown note."""
    note = get_note(conn, note_id, include_deleted)
    snapshot, log = _read_log(conn, note_id)
    return StoredNote(
        note_id=note_id,
        workspace_id=note["workspace_id"],
        state=None if snapshot is None else snapshot["state"],
        through_seq=0 if snapshot is None else snapshot["through_seq"],
        updates=log,
        # last_seq was read first; appends committed since may already be in the log.
        last_seq=max(note["last_seq"], log[-1][0] if log else 0),
    )


def load_doc(
    conn: sa.Connection, note_id: str, limits: document.Limits = DEFAULT_LIMITS
) -> pycrdt.Doc:
    """The note as a Doc (crdt.document.InvalidUpdate if stored bytes do not apply, and
    UpdateRefused, before pycrdt reads anything, if they are past ``limits``)."""
    stored = load_note(conn, note_id)
    return document.load(stored.state, (update for _, update in stored.updates), limits=limits)


def refused_note_message(note_id: str, exc: Exception) -> str:
    """Why a stored note cannot be opened, and what repairs it."""
    return (
        f"note {note_id} holds stored content refused by the update checks ({exc}); "
        f"an administrator can export and repair it: coscribe notes repair {note_id}"
    )


# --- compaction --------------------------------------------------------------------------------


def _advisory_key(note_id: str) -> int:
    digest = hashlib.blake2b(f"coscribe:compact:{note_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def compact_note(
    conn: sa.Connection,
    note_id: str,
    *,
    max_seq: int | None = None,
    now: datetime | None = None,
) -> CompactionResult:
    """Fold the updates after the newest snapshot (up to max_seq) into a new snapshot.

    ``max_seq`` defaults to the highest seq stored; the new snapshot's through_seq is the
    highest seq actually merged, never a seq this transaction cannot see. Then the update
    rows up to that seq (and up to max_seq) are deleted: the merged ones, and any an older
    snapshot already held (left behind by versions, which delete nothing). Rows appended
    meanwhile survive.
    ConflictError when another compaction of the note is running (PostgreSQL).
    """
    _note_id(note_id)
    if max_seq is not None:
        _seq("max_seq", max_seq)
    now = _now(now)
    get_note(conn, note_id)
    if conn.dialect.name == "postgresql":
        locked = conn.execute(
            sa.select(sa.func.pg_try_advisory_xact_lock(_advisory_key(note_id)))
        ).scalar_one()
        if not locked:
            raise ConflictError(f"compaction of note {note_id!r} is already running")
    base, log = _read_log(conn, note_id, max_seq)
    old_through = 0 if base is None else base["through_seq"]
    base_rows, base_bytes = (0, 0) if base is None else (1, len(base["state"]))
    snapshot_id = None
    through, rows_after, bytes_after = old_through, base_rows, base_bytes
    if log:
        through = log[-1][0]
        state, vector = _merge(note_id, base, log)
        snapshot_id = _insert_snapshot(
            conn, note_id, through, state, vector, "compaction", None, now
        )
        rows_after, bytes_after = 1, len(state)
    # Rows up to `through` are merged or were already held by the base snapshot; none above
    # max_seq is ever touched.
    delete_through = through if max_seq is None else min(through, max_seq)
    deleted = conn.execute(
        sa.delete(note_updates).where(
            note_updates.c.note_id == note_id, note_updates.c.seq <= delete_through
        )
    ).rowcount
    return CompactionResult(
        note_id=note_id,
        through_seq=through,
        merged=len(log),
        deleted=deleted,
        snapshot_id=snapshot_id,
        rows_before=base_rows + len(log),
        bytes_before=base_bytes + sum(len(update) for _, update in log),
        rows_after=rows_after,
        bytes_after=bytes_after,
    )


def _merge(note_id: str, base: Row | None, log: list[tuple[int, bytes]]) -> tuple[bytes, bytes]:
    try:
        return document.merge(None if base is None else base["state"], [u for _, u in log])
    except document.InvalidUpdate as exc:
        # Stored bytes that do not apply: keep every row as it is for someone to look at.
        raise ConflictError(
            f"note {note_id!r} has stored data that does not apply: {exc}"
        ) from None


def _insert_snapshot(
    conn: sa.Connection,
    note_id: str,
    through_seq: int,
    state: bytes,
    vector: bytes,
    kind: str,
    label: str | None,
    now: datetime,
) -> int:
    return conn.execute(
        sa.insert(note_snapshots)
        .values(
            note_id=note_id,
            through_seq=through_seq,
            state=state,
            state_vector=vector,
            kind=kind,
            label=label,
            created_at=now,
        )
        .returning(note_snapshots.c.id)
    ).scalar_one()


# --- versions ----------------------------------------------------------------------------------

_VERSION_COLUMNS = (
    note_snapshots.c.id,
    note_snapshots.c.note_id,
    note_snapshots.c.through_seq,
    note_snapshots.c.kind,
    note_snapshots.c.label,
    note_snapshots.c.created_at,
    sa.func.length(note_snapshots.c.state).label("size"),
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
    _note_id(note_id)
    if label is not None:
        label = _label("version label", label)
    if not isinstance(kind, str) or kind not in VERSION_KINDS:
        raise InvalidError(f"invalid version kind: expected one of {', '.join(VERSION_KINDS)}")
    now = _now(now)
    get_note(conn, note_id)
    base, log = _read_log(conn, note_id)
    if log:
        state, vector = _merge(note_id, base, log)
        through = log[-1][0]
    elif base is not None:
        state, vector, through = base["state"], base["state_vector"], base["through_seq"]
    else:
        state, vector = document.merge(None, [])
        through = 0
    version_id = _insert_snapshot(conn, note_id, through, state, vector, kind, label, now)
    return get_version(conn, note_id, version_id, include_state=False)


def list_versions(conn: sa.Connection, note_id: str) -> list[Row]:
    """Every snapshot of the note, newest first, without the state (``size`` is its bytes)."""
    get_note(conn, note_id)
    query = (
        sa.select(*_VERSION_COLUMNS)
        .where(note_snapshots.c.note_id == note_id)
        .order_by(note_snapshots.c.id.desc())
    )
    return [dict(row) for row in conn.execute(query).mappings()]


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
    if 1 <= version_id <= _MAX_BIGINT:
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
