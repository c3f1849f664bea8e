"""Export: everything in a database, in one consistent read, to a new archive file."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from crdt import document

from .. import migrate, update_log
from ..engine import Database
from ..schema import note_snapshots, notes
from .format import (
    EMPTY_STATE,
    FORMAT,
    FORMAT_VERSION,
    PROGRESS_EVERY,
    ROW_BATCH,
    TABLES,
    ArchiveError,
    ArchiveExistsError,
    ArchiveProgress,
    ProgressCallback,
    Row,
    b64,
    encode_row,
    os_reason,
    stored_data,
)

_VERSION_BATCH = 20  # snapshots per SELECT page (each holds a whole document)
_WRITE_BUFFER = 1 << 20


@dataclass(frozen=True)
class ExportReport:
    path: Path
    counts: dict[str, int]  # rows per table, in TABLES order ("notes": every note)
    notes: int
    deleted_notes: int  # of those, soft-deleted
    versions: int  # snapshot rows
    state_bytes: int  # notes' states plus versions' states, uncompressed
    bytes: int  # size of the archive file


@contextmanager
def _consistent_read(db: Database) -> Iterator[sa.Connection]:
    """One read-only transaction that sees one state of the whole database.

    SQLite (WAL) and the in-memory database keep one snapshot for a read transaction
    already; PostgreSQL's default READ COMMITTED gives each statement a new one, so an export
    beside a running server could archive a task whose note it missed: REPEATABLE READ.
    """
    if db.driver != "postgres":
        with db.read() as conn:
            yield conn
        return
    with db.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn


def _scan(
    conn: sa.Connection,
    table: sa.Table,
    *,
    where: Any = None,
    batch: int = ROW_BATCH,
) -> Iterator[Row]:
    """Every row of ``table`` (matching ``where``) by primary key, one page at a time."""
    key = list(table.primary_key.columns)
    last: list[Any] | None = None
    while True:
        query = sa.select(table).order_by(*key).limit(batch)
        if where is not None:
            query = query.where(where)
        if last is not None:
            after = key[0] > last[0] if len(key) == 1 else sa.tuple_(*key) > sa.tuple_(*last)
            query = query.where(after)
        rows = [dict(row) for row in conn.execute(query).mappings()]
        yield from rows
        if len(rows) < batch:
            return
        last = [rows[-1][column.name] for column in key]


class _Writer:
    """JSON lines into a gzip stream, buffered, counting records and reporting progress."""

    def __init__(self, stream: IO[bytes], total: int, progress: ProgressCallback | None) -> None:
        self.stream = stream
        self.total = total
        self.progress = progress
        self.records = 0
        self.table = ""
        self._chunks: list[bytes] = []
        self._buffered = 0

    def line(self, obj: Mapping[str, Any]) -> None:
        data = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode() + b"\n"
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered >= _WRITE_BUFFER:
            self.flush()

    def record(self, table: str, obj: Mapping[str, Any]) -> None:
        self.line(obj)
        self.records += 1
        changed, self.table = table != self.table, table
        if self.progress is not None and (
            changed or table == "notes" or self.records % PROGRESS_EVERY == 0
        ):
            self.progress(ArchiveProgress(self.records, self.total, table))

    def flush(self) -> None:
        self.stream.write(b"".join(self._chunks))
        self._chunks.clear()
        self._buffered = 0


def _check_destination(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise ArchiveError(f"{path} is a directory, expected an archive file name")
    if not path.parent.is_dir():
        raise ArchiveError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise ArchiveExistsError(f"{path} already exists")


def _publish(temp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished archive into place, atomically, never over a file unless told to."""
    if overwrite:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)  # fails if path exists, even if it appeared during the export
    except FileExistsError:
        raise ArchiveExistsError(f"{path} already exists") from None
    except OSError:
        # A filesystem without hard links: a check, then a rename (not atomic against a
        # file created in between, which is as good as it gets there).
        if path.exists():
            raise ArchiveExistsError(f"{path} already exists") from None
        os.replace(temp, path)
        return
    temp.unlink()


def export_archive(
    db: Database,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> ExportReport:
    """Write everything in ``db`` to a new archive at ``path`` (format: module docstring).

    The database is read in one transaction, so the archive is one consistent state even
    while a server writes. The archive is written to a temporary file beside ``path`` and
    renamed into place once complete: a failed export leaves no file under ``path``.
    ArchiveExistsError if ``path`` exists and ``overwrite`` is false; ArchiveError when it
    cannot be written; ConflictError for a note whose stored data does not apply.
    """
    path = Path(path)
    _check_destination(path, overwrite)
    schema = migrate.ensure_current(db)
    created_at = datetime.now(UTC)
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ArchiveError(f"cannot write {path}: {os_reason(exc)}") from None
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, mtime=int(created_at.timestamp())
            ) as compressed:
                report = _export(db, compressed, created_at, schema.current, progress)
            raw.flush()
            os.fsync(raw.fileno())
        size = temp.stat().st_size
        _publish(temp, path, overwrite)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ArchiveError(f"cannot write {path}: {os_reason(exc)}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return ExportReport(path=path, bytes=size, **report)


def _export(
    db: Database,
    stream: IO[bytes],
    created_at: datetime,
    revision: str | None,
    progress: ProgressCallback | None,
) -> dict[str, Any]:
    with _consistent_read(db) as conn:
        counts = {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in TABLES
        }
        counts["versions"] = conn.execute(
            sa.select(sa.func.count()).select_from(note_snapshots)
        ).scalar_one()
        writer = _Writer(stream, sum(counts.values()), progress)
        writer.line(
            {
                "type": "header",
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "created_at": created_at.isoformat(),
                "source": {"driver": db.driver, "schema_revision": revision},
                "counts": counts,
            }
        )
        deleted = state_bytes = 0
        for table in TABLES:
            if table is notes:
                for row in _scan(conn, notes):
                    deleted += row["deleted_at"] is not None
                    state_bytes += _export_note(conn, writer, row)
                continue
            for row in _scan(conn, table):
                writer.record(
                    table.name, {"type": "row", "table": table.name, "row": encode_row(table, row)}
                )
        writer.line({"type": "end", "records": writer.records})
        writer.flush()
        if progress is not None:
            progress(ArchiveProgress(writer.records, writer.total, "done"))
    versions = counts.pop("versions")
    return {
        "counts": counts,
        "notes": counts["notes"],
        "deleted_notes": deleted,
        "versions": versions,
        "state_bytes": state_bytes,
    }


def _export_note(conn: sa.Connection, writer: _Writer, row: Row) -> int:
    """The note's record and its versions' records; returns the state bytes written."""
    note_id = row["id"]
    stored = update_log.load_note(conn, note_id, include_deleted=True)
    if stored.updates:
        with stored_data(note_id):
            state, vector = document.merge(stored.state, [update for _, update in stored.updates])
    elif stored.state is not None:
        # Already compacted: the newest snapshot is the state, byte for byte (import then
        # sees that it needs no snapshot of its own).
        state = stored.state
        vector = conn.execute(
            update_log.newest_snapshot(note_id, note_snapshots.c.state_vector)
        ).scalar_one()
    else:
        state, vector = EMPTY_STATE, document.EMPTY_STATE_VECTOR
    writer.record(
        "notes",
        {
            "type": "note",
            "row": encode_row(notes, row),
            "state": b64(state),
            "state_vector": b64(bytes(vector)),
        },
    )
    written = len(state)
    for version in _scan(
        conn, note_snapshots, where=note_snapshots.c.note_id == note_id, batch=_VERSION_BATCH
    ):
        writer.record(
            "notes",
            {
                "type": "version",
                "note_id": note_id,
                "kind": version["kind"],
                "label": version["label"],
                "created_at": version["created_at"].isoformat(),
                "through_seq": version["through_seq"],
                "state": b64(bytes(version["state"])),
                "state_vector": b64(bytes(version["state_vector"])),
            },
        )
        written += len(version["state"])
    return written
