"""Portable archives of a whole database: what `coscribe export` writes and `coscribe import` reads.

Format, version 1: a gzip-compressed JSON Lines file (UTF-8, one JSON object per line), so
that any size of database streams through in bounded memory, and any tool can read it
(``zcat FILE | head``).

* Line 1, the header::

    {"type": "header", "format": "coscribe-archive", "version": 1,
     "created_at": "2030-01-01T12:00:00+00:00",
     "source": {"driver": "sqlite", "schema_revision": "0001"},
     "counts": {"workspaces": 2, ..., "notes": 5, "versions": 9}}

* Then the records, tables in foreign-key order (TABLES: a row's references come first):
  ``{"type": "row", "table": "agents", "row": {column: value, ...}}`` for every row of every
  entity table, and for each note (soft-deleted ones too)
  ``{"type": "note", "row": {...}, "state": B64, "state_vector": B64}`` followed by its
  versions, oldest first: ``{"type": "version", "note_id", "kind", "label", "created_at",
  "through_seq", "state": B64, "state_vector": B64}``.
* Last, ``{"type": "end", "records": N}``: an archive without it is incomplete.

Values: timestamps are ISO 8601 with their UTC offset, bytes are base64, JSON columns are
JSON. A note's ``state`` is its compacted document: the newest snapshot merged with the update
log after it (crdt.document.merge), one Yjs v1 update; the update log itself is not archived.
Its versions are every snapshot row of the note, whatever its kind (manual, auto, restore,
compaction). Snapshot ids are not kept (the target numbers its own), everything else is.

A reader refuses a version newer than FORMAT_VERSION, and an archive row with a column this
schema does not know; a column the archive lacks takes its default if it has one (an archive
from an older schema).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import os
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from crdt import document

from . import migrate
from . import notes as notes_store
from .engine import Database
from .errors import ConflictError, InvalidError
from .schema import (
    UtcDateTime,
    agents,
    background_tasks,
    codebases,
    conversation_messages,
    conversations,
    note_snapshots,
    note_updates,
    notes,
    schedules,
    task_dependencies,
    tasks,
    tokens,
    workspaces,
)
from .stores.base import check_id

FORMAT = "coscribe-archive"
FORMAT_VERSION = 1

# Every table, in foreign-key order. "notes" stands for the notes with their content and
# versions (note_snapshots); note_updates is never archived (the state holds it).
TABLES: tuple[sa.Table, ...] = (
    workspaces,
    tokens,
    agents,
    codebases,
    notes,
    conversations,
    conversation_messages,
    tasks,
    task_dependencies,
    schedules,
    background_tasks,
)
NOT_ARCHIVED_AS_ROWS = (note_snapshots, note_updates)
SNAPSHOT_KINDS = ("compaction", *notes_store.VERSION_KINDS)

_TABLE_NAMES = [table.name for table in TABLES]
_BY_NAME = {table.name: table for table in TABLES}
_ROW_BATCH = 500  # rows per SELECT page and per INSERT
_VERSION_BATCH = 20  # snapshots per SELECT page (each holds a whole document)
_WRITE_BUFFER = 1 << 20
_PROGRESS_EVERY = 100
_MAX_INT64 = 2**63 - 1
_MAX_INT32 = 2**31 - 1
_EMPTY_STATE, _ = document.merge(None, [])

Row = dict[str, Any]


class ArchiveError(InvalidError):
    """The archive file is missing, unreadable, not an archive, corrupt, or too new."""


class ArchiveExistsError(ConflictError):
    """The file to export to exists already (and overwriting it was not asked for)."""


@dataclass(frozen=True)
class ArchiveProgress:
    """Where an export or import is: ``done`` of ``total`` records, now in ``table``."""

    done: int
    total: int
    table: str


ProgressCallback = Callable[[ArchiveProgress], None]


@dataclass(frozen=True)
class ExportReport:
    path: Path
    counts: dict[str, int]  # rows per table, in TABLES order ("notes": every note)
    notes: int
    deleted_notes: int  # of those, soft-deleted
    versions: int  # snapshot rows
    state_bytes: int  # notes' states plus versions' states, uncompressed
    bytes: int  # size of the archive file


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


# --- values ------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return _b64(bytes(value))
    return value


def _encode_row(table: sa.Table, row: Mapping[str, Any]) -> Row:
    return {column.name: _encode_value(row[column.name]) for column in table.columns}


class _Corrupt(Exception):
    """A record that does not hold what it should; becomes an ArchiveError naming the line."""


def _decode_bytes(what: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise _Corrupt(f"{what}: expected base64 text, got {type(value).__name__}")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _Corrupt(f"{what}: not valid base64") from None


def _decode_time(what: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise _Corrupt(f"{what}: expected an ISO 8601 time, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Corrupt(f"{what}: not an ISO 8601 time: {value[:40]!r}") from None
    if parsed.utcoffset() is None:
        raise _Corrupt(f"{what}: time without a UTC offset: {value[:40]!r}")
    return parsed.astimezone(UTC)


def _decode_int(what: str, value: Any, maximum: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not -maximum - 1 <= value <= maximum
    ):
        raise _Corrupt(f"{what}: expected an integer, got {str(value)[:40]!r}")
    return value


def _decode_text(what: str, value: Any, length: int | None) -> str:
    if not isinstance(value, str):
        raise _Corrupt(f"{what}: expected a string, got {type(value).__name__}")
    if "\x00" in value:
        raise _Corrupt(f"{what}: NUL characters are not allowed")
    if length is not None and len(value) > length:
        raise _Corrupt(f"{what}: longer than {length} characters")
    return value


def _decode_value(column: sa.Column[Any], value: Any) -> Any:
    what = f"{column.table.name}.{column.name}"
    if value is None:
        if not column.nullable:
            raise _Corrupt(f"{what}: must not be null")
        return None
    kind = column.type
    if isinstance(kind, UtcDateTime):
        return _decode_time(what, value)
    if isinstance(kind, sa.LargeBinary):
        return _decode_bytes(what, value)
    if isinstance(kind, sa.Boolean):
        if not isinstance(value, bool):
            raise _Corrupt(f"{what}: expected true or false")
        return value
    if isinstance(kind, sa.BigInteger):
        return _decode_int(what, value, _MAX_INT64)
    if isinstance(kind, sa.Integer):
        return _decode_int(what, value, _MAX_INT32)
    if isinstance(kind, sa.JSON):
        return value
    if isinstance(kind, sa.String):
        text = _decode_text(what, value, kind.length)
        if kind.length is not None and (column.primary_key or column.foreign_keys):
            try:
                check_id(what, text)
            except InvalidError as exc:
                raise _Corrupt(str(exc)) from None
        return text
    raise AssertionError(f"no archive encoding for {what} ({kind!r})")  # pragma: no cover


def _decode_row(table: sa.Table, raw: Any) -> Row:
    if not isinstance(raw, dict):
        raise _Corrupt(f"{table.name} row: expected an object")
    unknown = sorted(set(raw) - set(table.columns.keys()))
    if unknown:
        raise _Corrupt(
            f"{table.name} row has column {unknown[0]!r}, which this coscribe does not know "
            "(an archive from a newer schema: upgrade coscribe)"
        )
    row: Row = {}
    for column in table.columns:
        if column.name in raw:
            row[column.name] = _decode_value(column, raw[column.name])
        elif not column.nullable and column.server_default is None:
            raise _Corrupt(f"{table.name} row lacks column {column.name!r}")
    return row


def _check_state(what: str, state: bytes, vector: bytes) -> None:
    """The state must decode as a Yjs update and the vector must be the state's own."""
    try:
        document.validate_update(state)
        claimed = document.decode_state_vector(vector)
        actual = document.decode_state_vector(
            document.state_vector(document.load(state, [], client_id=1))
        )
    except document.InvalidUpdate as exc:
        raise _Corrupt(f"{what}: the state is not a valid Yjs update ({exc})") from None
    except document.InvalidStateVector as exc:
        raise _Corrupt(f"{what}: {exc}") from None
    if claimed != actual:
        raise _Corrupt(f"{what}: the state vector does not match the state")


@contextmanager
def _stored_data(note_id: str) -> Iterator[None]:
    try:
        yield
    except document.InvalidUpdate as exc:
        # Left as it is for someone to look at, as compaction does.
        raise ConflictError(
            f"note {note_id!r} has stored data that does not apply: {exc}"
        ) from None


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


# --- export ------------------------------------------------------------------------------------


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
    batch: int = _ROW_BATCH,
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
            changed or table == "notes" or self.records % _PROGRESS_EVERY == 0
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
        raise ArchiveError(f"cannot write {path}: {_os_reason(exc)}") from None
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
        raise ArchiveError(f"cannot write {path}: {_os_reason(exc)}") from None
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
                    table.name, {"type": "row", "table": table.name, "row": _encode_row(table, row)}
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
    stored = notes_store.load_note(conn, note_id, include_deleted=True)
    if stored.updates:
        with _stored_data(note_id):
            state, vector = document.merge(stored.state, [update for _, update in stored.updates])
    elif stored.state is not None:
        # Already compacted: the newest snapshot is the state, byte for byte (import then
        # sees that it needs no snapshot of its own).
        state = stored.state
        vector = conn.execute(
            sa.select(note_snapshots.c.state_vector)
            .where(note_snapshots.c.note_id == note_id)
            .order_by(note_snapshots.c.through_seq.desc(), note_snapshots.c.id.desc())
            .limit(1)
        ).scalar_one()
    else:
        state, vector = _EMPTY_STATE, document.EMPTY_STATE_VECTOR
    writer.record(
        "notes",
        {
            "type": "note",
            "row": _encode_row(notes, row),
            "state": _b64(state),
            "state_vector": _b64(bytes(vector)),
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
                "state": _b64(bytes(version["state"])),
                "state_vector": _b64(bytes(version["state_vector"])),
            },
        )
        written += len(version["state"])
    return written


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveHeader:
    version: int
    created_at: datetime
    source: dict[str, Any]
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: neither JSON nor storable


class _ArchiveFile:
    """The lines of an archive as JSON objects; every way of failing is one ArchiveError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.line = 0
        try:
            self._raw = path.open("rb")
        except FileNotFoundError:
            raise ArchiveError(f"archive {path} not found") from None
        except IsADirectoryError:
            raise ArchiveError(f"archive {path} is a directory, not a file") from None
        except OSError as exc:
            raise ArchiveError(f"cannot read archive {path}: {_os_reason(exc)}") from None
        self._gzip = gzip.GzipFile(filename="", mode="rb", fileobj=self._raw)
        try:
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._gzip.close()
        self._raw.close()

    def __enter__(self) -> _ArchiveFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_line(self) -> bytes:
        try:
            data = self._gzip.readline()
        except gzip.BadGzipFile:
            raise ArchiveError(f"{self.path} is not a coscribe archive (not gzip data)") from None
        except EOFError:
            raise ArchiveError(
                f"archive {self.path} is truncated (its compressed data ends early)"
            ) from None
        except zlib.error as exc:
            raise ArchiveError(f"archive {self.path} is corrupt ({exc})") from None
        except OSError as exc:
            raise ArchiveError(f"cannot read archive {self.path}: {_os_reason(exc)}") from None
        if data:
            self.line += 1
        return data

    def _read_header(self) -> ArchiveHeader:
        data = self._next_line()
        not_archive = f"{self.path} is not a coscribe archive"
        if not data:
            raise ArchiveError(f"{not_archive} (it is empty)")
        try:
            header = json.loads(data, parse_constant=_no_constants)
        except (ValueError, RecursionError):  # also bad UTF-8
            raise ArchiveError(f"{not_archive} (its first line is not JSON)") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ArchiveError(f"{not_archive} (no archive header)")
        version = header.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ArchiveError(f"corrupt archive {self.path}: invalid format version {version!r}")
        if version > FORMAT_VERSION:
            raise ArchiveError(
                f"archive format {version} is newer than this coscribe supports "
                f"({FORMAT_VERSION}): upgrade coscribe"
            )
        counts = header.get("counts")
        if (
            not isinstance(counts, dict)
            or set(counts) - {*_TABLE_NAMES, "versions"}
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in counts.values())
        ):
            raise ArchiveError(f"corrupt archive {self.path}: invalid counts in its header")
        source = header.get("source")
        try:
            created_at = _decode_time("created_at", header.get("created_at"))
        except _Corrupt as exc:
            raise ArchiveError(f"corrupt archive {self.path}: header {exc}") from None
        return ArchiveHeader(
            version=version,
            created_at=created_at,
            source=source if isinstance(source, dict) else {},
            counts=counts,
        )

    def records(self) -> Iterator[dict[str, Any]]:
        """The records after the header, up to the end of the file."""
        while data := self._next_line():
            try:
                record = json.loads(data, parse_constant=_no_constants)
            except (ValueError, RecursionError):
                raise self.corrupt("not JSON (a damaged archive?)") from None
            if not isinstance(record, dict):
                raise self.corrupt("expected a JSON object")
            yield record

    def corrupt(self, problem: str) -> ArchiveError:
        return ArchiveError(f"corrupt archive {self.path}: line {self.line}: {problem}")


def read_header(path: str | os.PathLike[str]) -> ArchiveHeader:
    """The header of the archive at ``path`` (ArchiveError if it is not a readable archive)."""
    with _ArchiveFile(Path(path)) as archive:
        return archive.header


# --- import ------------------------------------------------------------------------------------


def _count_rows(conn: sa.Connection, table: sa.Table) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def _require_empty(conn: sa.Connection) -> None:
    found = []
    for table in (*TABLES, *NOT_ARCHIVED_AS_ROWS):
        if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
            found.append(f"{table.name}: {_count_rows(conn, table)}")
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
        archive: _ArchiveFile,
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
                raise _Corrupt(f"unknown record type {str(kind)[:40]!r}")
        except _Corrupt as exc:
            raise self.archive.corrupt(str(exc)) from None
        self.records += 1
        table = _TABLE_NAMES[self.position]
        if self.progress is not None and (
            kind == "note" or self.records % _PROGRESS_EVERY == 0 or table != self.reported
        ):
            self.reported = table
            self.progress(ArchiveProgress(self.records, self.archive.header.total, table))

    def _enter(self, name: Any) -> sa.Table:
        """The table a record belongs to; tables come in TABLES order."""
        if name not in _BY_NAME:
            raise _Corrupt(f"unknown table {str(name)[:40]!r}")
        index = _TABLE_NAMES.index(name)
        if index < self.position:
            raise _Corrupt(f"a {name} record after the {_TABLE_NAMES[self.position]} records")
        if name != "notes":
            self._finish_note()
        if self.batch_table is not None and self.batch_table.name != name:
            self._flush()
        self.position = index
        return _BY_NAME[name]

    def _row(self, record: dict[str, Any]) -> None:
        name = record.get("table")
        if name == "notes":
            raise _Corrupt("notes come as note records, not rows")
        table = self._enter(name)
        row = _decode_row(table, record.get("row"))
        self.seen[table.name] += 1
        if self.batch and set(self.batch[0]) != set(row):
            self._flush()  # one INSERT takes rows of one shape
        if not self.batch:
            self.batch_lines[0] = self.archive.line
        self.batch_lines[1] = self.archive.line
        self.batch.append(row)
        self.batch_table = table
        if len(self.batch) >= _ROW_BATCH:
            self._flush()

    def _note(self, record: dict[str, Any]) -> None:
        self._enter("notes")
        self._finish_note()
        row = _decode_row(notes, record.get("row"))
        state = _decode_bytes(f"state of note {row['id']!r}", record.get("state"))
        vector = _decode_bytes(f"state vector of note {row['id']!r}", record.get("state_vector"))
        _check_state(f"note {row['id']!r}", state, vector)
        self.seen["notes"] += 1
        self.state_bytes += len(state)
        found = self.conn.execute(sa.select(notes.c.id).where(notes.c.id == row["id"])).first()
        if found is not None and not self.merge:
            raise _Corrupt(f"note {row['id']!r} appears twice")
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
            raise _Corrupt(f"a version of note {str(note_id)[:40]!r} that does not follow it")
        what = f"version of note {note_id!r}"
        kind = record.get("kind")
        if kind not in SNAPSHOT_KINDS:
            raise _Corrupt(f"{what}: unknown kind {str(kind)[:40]!r}")
        label = record.get("label")
        if label is not None:
            label = _decode_text(f"{what}: label", label, notes_store.MAX_LABEL_CHARS)
        created_at = _decode_time(f"{what}: created_at", record.get("created_at"))
        through_seq = _decode_int(f"{what}: through_seq", record.get("through_seq"), _MAX_INT64)
        if not 0 <= through_seq <= note.row.get("last_seq", 0):
            raise _Corrupt(f"{what}: through_seq {through_seq} is beyond the note's last_seq")
        state = _decode_bytes(f"{what}: state", record.get("state"))
        vector = _decode_bytes(f"{what}: state_vector", record.get("state_vector"))
        _check_state(what, state, vector)
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
        self._insert_snapshot(note.row["id"], through_seq, state, vector, kind, label, created_at)
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
        for name in (*_TABLE_NAMES, "versions"):
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
            raise _Corrupt(f"{what} do not fit the target database: {reason}") from None

    def _insert_snapshot(
        self,
        note_id: str,
        through_seq: int,
        state: bytes,
        vector: bytes,
        kind: str,
        label: str | None,
        created_at: datetime,
    ) -> None:
        row = {
            "note_id": note_id,
            "through_seq": through_seq,
            "state": state,
            "state_vector": vector,
            "kind": kind,
            "label": label,
            "created_at": created_at,
        }
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
        if note.versions_added == 0 and note.state == _EMPTY_STATE:
            return  # an empty note needs no snapshot
        # Through the note's last seq: every update the source had is in this state, and it
        # is above every version's through_seq, so load reads it.
        through = max(note.row.get("last_seq", 0), note.top_seq)
        self._insert_snapshot(
            note.row["id"],
            through,
            note.state,
            note.vector,
            "compaction",
            None,
            self.archive.header.created_at,
        )

    def _merge_into(self, note: _Note) -> None:
        """Merge the archived state into an existing note, as a CRDT update (idempotent)."""
        note_id = note.row["id"]
        self.notes_merged += 1
        stored = notes_store.load_note(self.conn, note_id, include_deleted=True)
        updates = [update for _, update in stored.updates]
        with _stored_data(note_id):
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
        stored = notes_store.load_note(self.conn, note_id, include_deleted=True)
        with _stored_data(note_id):
            state, vector = document.merge(
                stored.state, [*(update for _, update in stored.updates), note.state]
            )
        self._insert_snapshot(note_id, seq, state, vector, "compaction", None, self.now)

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
    with _ArchiveFile(path) as archive:
        if progress is not None:
            progress(ArchiveProgress(0, archive.header.total, _TABLE_NAMES[0]))
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
        added={name: importer.added[name] for name in _TABLE_NAMES},
        skipped={name: importer.skipped[name] for name in _TABLE_NAMES},
        notes=importer.added["notes"],
        notes_merged=importer.notes_merged,
        notes_changed=importer.notes_changed,
        versions=importer.seen["versions"] - importer.versions_skipped,
        versions_skipped=importer.versions_skipped,
        state_bytes=importer.state_bytes,
        bytes=size,
        merge=merge,
    )
