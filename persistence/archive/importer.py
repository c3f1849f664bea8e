"""Import: an archive into an empty database, or merged into one, in one transaction."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from crdt import document

from .. import migrate, update_log, versions
from ..engine import Database
from ..errors import ConflictError
from ..schema import note_snapshots, notes, task_dependencies, tasks
from ..schema import workspaces as workspaces_table
from ..stores import workspaces
from .format import (
    BY_NAME,
    EMPTY_STATE,
    MAX_INT64,
    NOT_ARCHIVED_AS_ROWS,
    PROGRESS_EVERY,
    ROW_BATCH,
    SNAPSHOT_KINDS,
    TABLE_NAMES,
    TABLES,
    ArchiveError,
    ArchiveFile,
    ArchiveProgress,
    Corrupt,
    ProgressCallback,
    Row,
    check_state,
    decode_bytes,
    decode_int,
    decode_row,
    decode_text,
    decode_time,
    stored_data,
)


@dataclass(frozen=True)
class ImportReport:
    path: Path
    added: dict[str, int]  # rows inserted per table, in TABLES order ("notes": new notes)
    skipped: dict[str, int]  # rows whose ids exist already (merge only)
    notes: int  # notes added
    notes_merged: int  # archived notes that exist already: their states were merged in
    notes_changed: int  # of those, the ones whose content the merge changed
    versions: int  # versions added
    versions_skipped: int  # versions an existing note has already (merge only)
    state_bytes: int  # notes' states plus versions' states read, uncompressed
    bytes: int  # size of the archive file
    merge: bool


def _count_rows(conn: sa.Connection, table: sa.Table) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def _require_empty(conn: sa.Connection) -> None:
    """Refuse a target holding any row, but the default workspace alone: every migration and
    start creates that one (persistence.migrate), so it is not data. It makes way for the
    archive's rows (its own default workspace, if it has one; else the next start makes it)."""
    found = []
    for table in (*TABLES, *NOT_ARCHIVED_AS_ROWS):
        if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
            found.append(f"{table.name}: {_count_rows(conn, table)}")
    if found == [f"{workspaces_table.name}: 1"] and workspaces.find(conn, workspaces.DEFAULT_ID):
        workspaces.delete(conn, workspaces.DEFAULT_ID)
        return
    if found:
        raise ConflictError(
            f"the target database is not empty ({', '.join(found)}): import into an empty "
            "database, or merge the archive into this one (--merge)"
        )


@dataclass
class _Note:
    """The note being imported: its archived state, and its versions as they come."""

    row: Row
    state: bytes
    vector: bytes
    existing: bool
    top_seq: int = -1  # the highest through_seq among the versions written
    top_is_state: bool = False  # that version (the newest with top_seq) is the state itself
    versions_added: int = 0
    known: set[tuple[Any, ...]] = field(default_factory=set)  # an existing note's versions


def _version_key(kind: str, label: str | None, created_at: datetime, state: bytes) -> tuple:
    return (kind, label, created_at, hashlib.sha256(state).digest())


class _Importer:
    def __init__(
        self,
        conn: sa.Connection,
        archive: ArchiveFile,
        *,
        merge: bool,
        progress: ProgressCallback | None,
        now: datetime,
    ) -> None:
        self.conn = conn
        self.archive = archive
        self.merge = merge
        self.progress = progress
        self.now = now
        self.position = 0  # index in TABLES: records may not go back to an earlier table
        self.batch: list[Row] = []
        self.batch_table: sa.Table | None = None
        self.batch_lines = [0, 0]  # the lines of the batch's first and last rows
        self.note: _Note | None = None
        self.added: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()  # records per table (and "versions") read
        self.records = 0
        self.notes_merged = self.notes_changed = 0
        self.versions_skipped = 0
        self.state_bytes = 0
        self.ended = False
        self.reported = ""  # the table of the last progress report

    # records

    def add(self, record: dict[str, Any]) -> None:
        if self.ended:
            raise self.archive.corrupt("data after the end record")
        kind = record.get("type")
        try:
            if kind == "row":
                self._row(record)
            elif kind == "note":
                self._note(record)
            elif kind == "version":
                self._version(record)
            elif kind == "end":
                self._end(record)
                return
            else:
                raise Corrupt(f"unknown record type {str(kind)[:40]!r}")
        except Corrupt as exc:
            raise self.archive.corrupt(str(exc)) from None
        self.records += 1
        table = TABLE_NAMES[self.position]
        if self.progress is not None and (
            kind == "note" or self.records % PROGRESS_EVERY == 0 or table != self.reported
        ):
            self.reported = table
            self.progress(ArchiveProgress(self.records, self.archive.header.total, table))

    def _enter(self, name: Any) -> sa.Table:
        """The table a record belongs to; tables come in TABLES order."""
        if name not in BY_NAME:
            raise Corrupt(f"unknown table {str(name)[:40]!r}")
        index = TABLE_NAMES.index(name)
        if index < self.position:
            raise Corrupt(f"a {name} record after the {TABLE_NAMES[self.position]} records")
        if name != "notes":
            self._finish_note()
        if self.batch_table is not None and self.batch_table.name != name:
            self._flush()
        self.position = index
        return BY_NAME[name]

    def _row(self, record: dict[str, Any]) -> None:
        name = record.get("table")
        if name == "notes":
            raise Corrupt("notes come as note records, not rows")
        table = self._enter(name)
        row = decode_row(table, record.get("row"))
        self.seen[table.name] += 1
        if self.batch and set(self.batch[0]) != set(row):
            self._flush()  # one INSERT takes rows of one shape
        if not self.batch:
            self.batch_lines[0] = self.archive.line
        self.batch_lines[1] = self.archive.line
        self.batch.append(row)
        self.batch_table = table
        if len(self.batch) >= ROW_BATCH:
            self._flush()

    def _note(self, record: dict[str, Any]) -> None:
        self._enter("notes")
        self._finish_note()
        row = decode_row(notes, record.get("row"))
        state = decode_bytes(f"state of note {row['id']!r}", record.get("state"))
        vector = decode_bytes(f"state vector of note {row['id']!r}", record.get("state_vector"))
        check_state(f"note {row['id']!r}", state, vector)
        self.seen["notes"] += 1
        self.state_bytes += len(state)
        found = self.conn.execute(sa.select(notes.c.id).where(notes.c.id == row["id"])).first()
        if found is not None and not self.merge:
            raise Corrupt(f"note {row['id']!r} appears twice")
        self.note = _Note(row=row, state=state, vector=vector, existing=found is not None)
        if self.note.existing:
            self.skipped["notes"] += 1
            query = sa.select(
                note_snapshots.c.kind,
                note_snapshots.c.label,
                note_snapshots.c.created_at,
                note_snapshots.c.state,
            ).where(note_snapshots.c.note_id == row["id"])
            for kind, label, created_at, known_state in self.conn.execute(query):
                self.note.known.add(_version_key(kind, label, created_at, bytes(known_state)))
            return
        self._insert(notes, [row])
        self.added["notes"] += 1

    def _version(self, record: dict[str, Any]) -> None:
        self._enter("notes")
        note = self.note
        note_id = record.get("note_id")
        if note is None or note.row["id"] != note_id:
            raise Corrupt(f"a version of note {str(note_id)[:40]!r} that does not follow it")
        what = f"version of note {note_id!r}"
        kind = record.get("kind")
        if kind not in SNAPSHOT_KINDS:
            raise Corrupt(f"{what}: unknown kind {str(kind)[:40]!r}")
        label = record.get("label")
        if label is not None:
            label = decode_text(f"{what}: label", label, versions.MAX_LABEL_CHARS)
        created_at = decode_time(f"{what}: created_at", record.get("created_at"))
        through_seq = decode_int(f"{what}: through_seq", record.get("through_seq"), MAX_INT64)
        if not 0 <= through_seq <= note.row.get("last_seq", 0):
            raise Corrupt(f"{what}: through_seq {through_seq} is beyond the note's last_seq")
        state = decode_bytes(f"{what}: state", record.get("state"))
        vector = decode_bytes(f"{what}: state_vector", record.get("state_vector"))
        check_state(what, state, vector)
        self.seen["versions"] += 1
        self.state_bytes += len(state)
        if note.existing:
            key = _version_key(kind, label, created_at, state)
            if key in note.known:
                self.versions_skipped += 1
                return
            note.known.add(key)
            # Its seq belongs to another history: claim nothing of this note's log (0), and
            # the snapshot _finish_note writes at a new seq stays the one load reads.
            through_seq = 0
        elif through_seq >= note.top_seq:
            note.top_seq = through_seq
            note.top_is_state = (state, vector) == (note.state, note.vector)
        self._insert_snapshot(
            update_log.snapshot_row(
                note.row["id"], through_seq, state, vector, kind, label, created_at
            )
        )
        note.versions_added += 1

    def _end(self, record: dict[str, Any]) -> None:
        self._finish_note()
        self._flush()
        if record.get("records") != self.records:
            raise self.archive.corrupt(
                f"the archive says it holds {record.get('records')!r} records, "
                f"but {self.records} came before its end"
            )
        expected = self.archive.header.counts
        for name in (*TABLE_NAMES, "versions"):
            if expected.get(name, 0) != self.seen[name]:
                raise self.archive.corrupt(
                    f"the header counts {expected.get(name, 0)} {name}, the archive holds "
                    f"{self.seen[name]}"
                )
        self.ended = True

    # writes

    def _insert(self, table: sa.Table, rows: Sequence[Row], where: str | None = None) -> None:
        try:
            self.conn.execute(table.insert(), list(rows))
        except (sa_exc.IntegrityError, sa_exc.DataError) as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            what = f"{table.name} rows" + (f" ({where})" if where else "")
            raise Corrupt(f"{what} do not fit the target database: {reason}") from None

    def _insert_snapshot(self, row: dict[str, Any]) -> None:
        """Insert a row made by update_log.snapshot_row (an archive's errors: Corrupt)."""
        self._insert(note_snapshots, [row])

    def _flush(self) -> None:
        rows, table = self.batch, self.batch_table
        self.batch, self.batch_table = [], None
        if not rows or table is None:
            return
        if self.merge:
            rows = self._new_rows(table, rows)
            self._check_unique(table, rows)
        if rows:
            self._insert(table, rows, "lines {}-{}".format(*self.batch_lines))
            self.added[table.name] += len(rows)

    def _new_rows(self, table: sa.Table, rows: list[Row]) -> list[Row]:
        """The rows whose primary keys the target does not have yet (the rest are counted)."""
        key = list(table.primary_key.columns)
        values = [tuple(row[column.name] for column in key) for row in rows]
        if len(key) == 1:
            query = sa.select(key[0]).where(key[0].in_([value[0] for value in values]))
        else:
            query = sa.select(*key).where(sa.tuple_(*key).in_(values))
        existing = {tuple(found) for found in self.conn.execute(query)}
        self.skipped[table.name] += sum(value in existing for value in values)
        return [row for row, value in zip(rows, values, strict=True) if value not in existing]

    def _check_unique(self, table: sa.Table, rows: list[Row]) -> None:
        """A new row that clashes with a target row on a unique constraint: a ConflictError."""
        for constraint in table.constraints:
            if not isinstance(constraint, sa.UniqueConstraint) or not rows:
                continue
            columns = list(constraint.columns)
            names = [column.name for column in columns]
            values = {
                tuple(row.get(name) for name in names): row["id"]
                for row in rows
                if all(row.get(name) is not None for name in names)
            }
            if not values:
                continue
            if len(columns) == 1:
                where = columns[0].in_([value[0] for value in values])
            else:
                where = sa.tuple_(*columns).in_(list(values))
            clash = self.conn.execute(sa.select(table.c.id, *columns).where(where)).first()
            if clash is not None:
                taken = tuple(clash[1:])
                shown = ", ".join(f"{n} {v!r}" for n, v in zip(names, taken, strict=True))
                raise ConflictError(
                    f"cannot merge {table.name} row {values[taken]!r}: the target's row "
                    f"{clash[0]!r} has the same {shown}"
                )

    def _finish_note(self) -> None:
        note, self.note = self.note, None
        if note is None:
            return
        if note.existing:
            self._merge_into(note)
            return
        if note.top_is_state:
            return  # the newest version is the state: load reads it already
        if note.versions_added == 0 and note.state == EMPTY_STATE:
            return  # an empty note needs no snapshot
        # Through the note's last seq: every update the source had is in this state, and it
        # is above every version's through_seq, so load reads it.
        through = max(note.row.get("last_seq", 0), note.top_seq)
        self._insert_snapshot(
            update_log.snapshot_row(
                note.row["id"],
                through,
                note.state,
                note.vector,
                "compaction",
                None,
                self.archive.header.created_at,
            )
        )

    def _merge_into(self, note: _Note) -> None:
        """Merge the archived state into an existing note, as a CRDT update (idempotent)."""
        note_id = note.row["id"]
        self.notes_merged += 1
        stored = update_log.load_note(self.conn, note_id, include_deleted=True)
        updates = [update for _, update in stored.updates]
        with stored_data(note_id):
            before = document.load(stored.state, updates, client_id=1)
            after = document.load(stored.state, [*updates, note.state], client_id=1)
        changed = document.render(before) != document.render(after) or (
            document.decode_state_vector(document.state_vector(before))
            != document.decode_state_vector(document.state_vector(after))
        )
        if not changed and note.versions_added == 0:
            return
        # A new seq, allocated the way append_updates does (the row lock orders us behind any
        # appender), then the log read again: now it holds every update below that seq.
        seq = self.conn.execute(
            sa.update(notes)
            .where(notes.c.id == note_id)
            .values(last_seq=notes.c.last_seq + 1)
            .returning(notes.c.last_seq)
        ).scalar_one()
        if changed:
            self.notes_changed += 1
            self.conn.execute(
                sa.update(notes).where(notes.c.id == note_id).values(updated_at=self.now)
            )
        stored = update_log.load_note(self.conn, note_id, include_deleted=True)
        with stored_data(note_id):
            state, vector = document.merge(
                stored.state, [*(update for _, update in stored.updates), note.state]
            )
        self._insert_snapshot(
            update_log.snapshot_row(note_id, seq, state, vector, "compaction", None, self.now)
        )

    def check_dependencies(self) -> None:
        """No dependency across workspaces and no cycle, as tasks.add_dependency promises."""
        if not self.added["task_dependencies"]:
            return
        dependent, prerequisite = tasks.alias("dependent"), tasks.alias("prerequisite")
        crossing = self.conn.execute(
            sa.select(task_dependencies.c.task_id, task_dependencies.c.depends_on_id)
            .join(dependent, dependent.c.id == task_dependencies.c.task_id)
            .join(prerequisite, prerequisite.c.id == task_dependencies.c.depends_on_id)
            .where(dependent.c.workspace_id != prerequisite.c.workspace_id)
            .limit(1)
        ).first()
        if crossing is not None:
            raise ArchiveError(
                f"corrupt archive: task {crossing[0]!r} depends on task {crossing[1]!r} "
                "of another workspace"
            )
        edges: dict[str, list[str]] = {}
        for task_id, depends_on_id in self.conn.execute(
            sa.select(task_dependencies.c.task_id, task_dependencies.c.depends_on_id)
        ):
            edges.setdefault(task_id, []).append(depends_on_id)
        cycle = _find_cycle(edges)
        if cycle is not None:
            raise ArchiveError(
                f"task dependencies would form a cycle: {' -> '.join(cycle)}"
                + ("" if not self.merge else " (with the target's own dependencies)")
            )


def _find_cycle(edges: Mapping[str, list[str]]) -> list[str] | None:
    """One cycle of the graph as a closed path, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if start in state:
            continue
        path = [start]
        stack = [iter(edges.get(start, ()))]
        state[start] = 1
        while stack:
            target = next(stack[-1], None)
            if target is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(target) == 1:
                return [*path[path.index(target) :], target]
            elif target not in state:
                state[target] = 1
                path.append(target)
                stack.append(iter(edges.get(target, ())))
    return None


def import_archive(
    db: Database,
    path: str | os.PathLike[str],
    *,
    merge: bool = False,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Load the archive at ``path`` into ``db``, in ONE transaction: all of it or nothing.

    Without ``merge`` the target must be empty (ConflictError otherwise: not a single row in
    any table). Rows keep their ids, timestamps and JSON as archived. Each note gets its
    versions as snapshots (original kind, label, created_at and through_seq), and its state
    as the snapshot load reads (through the note's last_seq, newer than every version; no
    extra snapshot when the newest version is the state already), so it loads identical.

    With ``merge`` the rows whose ids (primary keys) exist already are skipped and counted;
    a new row that clashes with a target row on a unique column (a workspace slug, an agent
    name) is a ConflictError. A note that exists already keeps its metadata, but its content
    is merged: the archived state is applied to it as a CRDT update (Yjs merging is
    idempotent, so content the note has already changes nothing, and importing one archive
    twice changes nothing the second time). The merged document is stored as a new snapshot
    at a newly allocated seq, the one load reads; its update log is left as it is. Archived
    versions it does not have yet (same kind, label, time and state) are added with
    through_seq 0: their seqs belong to the source's history, not this note's.

    ArchiveError for a missing, unreadable, non-archive, corrupt or incomplete file and for
    a newer format; SchemaError for a target that is not migrated. In every error case the
    database is left as it was. Run it with no server writing to the target (on SQLite the
    import holds the write lock throughout; a live room would not see merged content).
    """
    path = Path(path)
    migrate.ensure_current(db)
    now = datetime.now(UTC)
    with ArchiveFile(path) as archive:
        if progress is not None:
            progress(ArchiveProgress(0, archive.header.total, TABLE_NAMES[0]))
        with db.begin() as conn:
            if not merge:
                _require_empty(conn)
            importer = _Importer(conn, archive, merge=merge, progress=progress, now=now)
            for record in archive.records():
                importer.add(record)
            if not importer.ended:
                raise ArchiveError(
                    f"archive {path} is incomplete: it has no end record (a cut-off copy?)"
                )
            importer.check_dependencies()
        size = path.stat().st_size
    if progress is not None:
        progress(ArchiveProgress(importer.records, archive.header.total, "done"))
    return ImportReport(
        path=path,
        added={name: importer.added[name] for name in TABLE_NAMES},
        skipped={name: importer.skipped[name] for name in TABLE_NAMES},
        notes=importer.added["notes"],
        notes_merged=importer.notes_merged,
        notes_changed=importer.notes_changed,
        versions=importer.seen["versions"] - importer.versions_skipped,
        versions_skipped=importer.versions_skipped,
        state_bytes=importer.state_bytes,
        bytes=size,
        merge=merge,
    )
