"""The archive format: its constants, how values are written and read, and the reader.

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
import json
import os
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from crdt import document

from .. import versions
from ..checks import check_id
from ..errors import ConflictError, InvalidError
from ..schema import (
    UtcDateTime,
    agents,
    background_tasks,
    codebases,
    conversation_messages,
    conversations,
    counters,
    note_events,
    note_search,
    note_snapshots,
    note_updates,
    notes,
    schedules,
    task_dependencies,
    tasks,
    tokens,
    webhook_deliveries,
    webhooks,
    workspaces,
)

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
# Not archived at all. The search index is rebuilt from the imported notes (the server indexes
# every note whose index entry is missing or behind, and `coscribe search reindex` does it at
# once); the event log and webhook deliveries are this database's own history, and webhooks
# hold secrets an archive should not carry: an admin registers them again.
NOT_ARCHIVED = (note_search, counters, note_events, webhooks, webhook_deliveries)
SNAPSHOT_KINDS = ("compaction", *versions.VERSION_KINDS)

TABLE_NAMES = [table.name for table in TABLES]
BY_NAME = {table.name: table for table in TABLES}
ROW_BATCH = 500  # rows per SELECT page and per INSERT
PROGRESS_EVERY = 100
MAX_INT64 = 2**63 - 1
MAX_INT32 = 2**31 - 1
EMPTY_STATE, _ = document.merge(None, [])

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


# --- values ------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return b64(bytes(value))
    return value


def encode_row(table: sa.Table, row: Mapping[str, Any]) -> Row:
    return {column.name: encode_value(row[column.name]) for column in table.columns}


class Corrupt(Exception):
    """A record that does not hold what it should; becomes an ArchiveError naming the line."""


def decode_bytes(what: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise Corrupt(f"{what}: expected base64 text, got {type(value).__name__}")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise Corrupt(f"{what}: not valid base64") from None


def decode_time(what: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise Corrupt(f"{what}: expected an ISO 8601 time, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Corrupt(f"{what}: not an ISO 8601 time: {value[:40]!r}") from None
    if parsed.utcoffset() is None:
        raise Corrupt(f"{what}: time without a UTC offset: {value[:40]!r}")
    return parsed.astimezone(UTC)


def decode_int(what: str, value: Any, maximum: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not -maximum - 1 <= value <= maximum
    ):
        raise Corrupt(f"{what}: expected an integer, got {str(value)[:40]!r}")
    return value


def decode_text(what: str, value: Any, length: int | None) -> str:
    if not isinstance(value, str):
        raise Corrupt(f"{what}: expected a string, got {type(value).__name__}")
    if "\x00" in value:
        raise Corrupt(f"{what}: NUL characters are not allowed")
    if length is not None and len(value) > length:
        raise Corrupt(f"{what}: longer than {length} characters")
    return value


def decode_value(column: sa.Column[Any], value: Any) -> Any:
    what = f"{column.table.name}.{column.name}"
    if value is None:
        if not column.nullable:
            raise Corrupt(f"{what}: must not be null")
        return None
    kind = column.type
    if isinstance(kind, UtcDateTime):
        return decode_time(what, value)
    if isinstance(kind, sa.LargeBinary):
        return decode_bytes(what, value)
    if isinstance(kind, sa.Boolean):
        if not isinstance(value, bool):
            raise Corrupt(f"{what}: expected true or false")
        return value
    if isinstance(kind, sa.BigInteger):
        return decode_int(what, value, MAX_INT64)
    if isinstance(kind, sa.Integer):
        return decode_int(what, value, MAX_INT32)
    if isinstance(kind, sa.JSON):
        return value
    if isinstance(kind, sa.String):
        text = decode_text(what, value, kind.length)
        if kind.length is not None and (column.primary_key or column.foreign_keys):
            try:
                check_id(what, text)
            except InvalidError as exc:
                raise Corrupt(str(exc)) from None
        return text
    raise AssertionError(f"no archive encoding for {what} ({kind!r})")  # pragma: no cover


def decode_row(table: sa.Table, raw: Any) -> Row:
    if not isinstance(raw, dict):
        raise Corrupt(f"{table.name} row: expected an object")
    unknown = sorted(set(raw) - set(table.columns.keys()))
    if unknown:
        raise Corrupt(
            f"{table.name} row has column {unknown[0]!r}, which this coscribe does not know "
            "(an archive from a newer schema: upgrade coscribe)"
        )
    row: Row = {}
    for column in table.columns:
        if column.name in raw:
            row[column.name] = decode_value(column, raw[column.name])
        elif not column.nullable and column.server_default is None:
            raise Corrupt(f"{table.name} row lacks column {column.name!r}")
    return row


def check_state(what: str, state: bytes, vector: bytes) -> None:
    """The state must decode as a Yjs update and the vector must be the state's own."""
    try:
        document.validate_update(state)
        claimed = document.decode_state_vector(vector)
        actual = document.decode_state_vector(
            document.state_vector(document.load(state, [], client_id=1))
        )
    except document.InvalidUpdate as exc:
        raise Corrupt(f"{what}: the state is not a valid Yjs update ({exc})") from None
    except document.InvalidStateVector as exc:
        raise Corrupt(f"{what}: {exc}") from None
    if claimed != actual:
        raise Corrupt(f"{what}: the state vector does not match the state")


@contextmanager
def stored_data(note_id: str) -> Iterator[None]:
    try:
        yield
    except document.InvalidUpdate as exc:
        # Left as it is for someone to look at, as compaction does.
        raise ConflictError(
            f"note {note_id!r} has stored data that does not apply: {exc}"
        ) from None


def os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


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


def no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: neither JSON nor storable


class ArchiveFile:
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
            raise ArchiveError(f"cannot read archive {path}: {os_reason(exc)}") from None
        self._gzip = gzip.GzipFile(filename="", mode="rb", fileobj=self._raw)
        try:
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._gzip.close()
        self._raw.close()

    def __enter__(self) -> ArchiveFile:
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
            raise ArchiveError(f"cannot read archive {self.path}: {os_reason(exc)}") from None
        if data:
            self.line += 1
        return data

    def _read_header(self) -> ArchiveHeader:
        data = self._next_line()
        not_archive = f"{self.path} is not a coscribe archive"
        if not data:
            raise ArchiveError(f"{not_archive} (it is empty)")
        try:
            header = json.loads(data, parse_constant=no_constants)
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
            or set(counts) - {*TABLE_NAMES, "versions"}
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in counts.values())
        ):
            raise ArchiveError(f"corrupt archive {self.path}: invalid counts in its header")
        source = header.get("source")
        try:
            created_at = decode_time("created_at", header.get("created_at"))
        except Corrupt as exc:
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
                record = json.loads(data, parse_constant=no_constants)
            except (ValueError, RecursionError):
                raise self.corrupt("not JSON (a damaged archive?)") from None
            if not isinstance(record, dict):
                raise self.corrupt("expected a JSON object")
            yield record

    def corrupt(self, problem: str) -> ArchiveError:
        return ArchiveError(f"corrupt archive {self.path}: line {self.line}: {problem}")


def read_header(path: str | os.PathLike[str]) -> ArchiveHeader:
    """The header of the archive at ``path`` (ArchiveError if it is not a readable archive)."""
    with ArchiveFile(Path(path)) as archive:
        return archive.header
