"""The generic machinery of the plain stores; the entity modules only declare their fields.

Every function takes the caller's Connection and never commits: the caller owns the
transaction. Rows are plain dicts whose datetimes are timezone-aware UTC.

Input is validated before any SQL runs (types, lengths that match schema.py, NUL characters
PostgreSQL refuses, integer ranges, JSON that both JSON and JSONB accept), and references are
looked up explicitly, so a driver error is never how bad input is reported. What validation
cannot foresee is a concurrent transaction (PostgreSQL) committing a clashing row between our
check and our write: such writes run in a savepoint and come back as ConflictError or
NotFoundError, with the savepoint undone so nothing is left half-written.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from .. import schema
from ..errors import ConflictError, InvalidError, NotFoundError

Row = dict[str, Any]
# A check takes what is being checked ("agent name") and a value; it returns the value to store
# or raises InvalidError with a message naming what was wrong.
Check = Callable[[str, Any], Any]
# Called on every write after the fields are checked: (conn, old row or None, new row, now).
# It may set derived columns on the new row or raise a StoreError.
Prepare = Callable[[sa.Connection, "Row | None", Row, datetime], None]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_TEXT_CHARS = 1_000_000
MAX_JSON_CHARS = 1_000_000
MAX_JSON_DEPTH = 64
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{schema.ID_LENGTH}}}")
_COLLECTIONS = (list, tuple, set, frozenset)


@dataclass(frozen=True)
class Page:
    """One page of a list; pass ``next_cursor`` back to get the next one (None: no more)."""

    items: list[Row]
    next_cursor: str | None


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _kind(value: Any) -> str:
    return type(value).__name__


# --- checks ------------------------------------------------------------------------------------


def check_id(what: str, value: Any) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidError(
            f"invalid {what}: expected 1-{schema.ID_LENGTH} characters of A-Z a-z 0-9 _ -, "
            f"got {_show(value)}"
        )
    return value


def _check_string(what: str, value: str) -> None:
    if "\x00" in value:
        raise InvalidError(f"invalid {what}: NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidError(f"invalid {what}: not valid Unicode (lone surrogate)") from None


def text(
    max_length: int = MAX_TEXT_CHARS,
    *,
    blank: bool = True,
    nullable: bool = False,
    pattern: re.Pattern[str] | None = None,
    hint: str = "",
) -> Check:
    """A string of at most ``max_length`` characters; ``blank=False`` refuses empty ones."""

    def check(what: str, value: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise InvalidError(f"invalid {what}: expected a string, got {_kind(value)}")
        _check_string(what, value)
        if len(value) > max_length:
            raise InvalidError(
                f"invalid {what}: at most {max_length} characters allowed, got {len(value)}"
            )
        if not blank and not value.strip():
            raise InvalidError(f"invalid {what}: must not be empty")
        if pattern is not None and not pattern.fullmatch(value):
            raise InvalidError(f"invalid {what}: {hint}, got {_show(value)}")
        return value

    return check


def reference(*, nullable: bool = True) -> Check:
    """The id of another row (its existence is checked by Entity through ``refs``)."""

    def check(what: str, value: Any) -> Any:
        return None if value is None and nullable else check_id(what, value)

    return check


def choice(*allowed: str) -> Check:
    def check(what: str, value: Any) -> Any:
        if value not in allowed or not isinstance(value, str):
            raise InvalidError(
                f"invalid {what}: expected one of {', '.join(allowed)}, got {_show(value)}"
            )
        return value

    return check


def integer(minimum: int = INT32_MIN, maximum: int = INT32_MAX) -> Check:
    def check(what: str, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidError(f"invalid {what}: expected an integer, got {_kind(value)}")
        if not minimum <= value <= maximum:
            raise InvalidError(f"invalid {what}: must be between {minimum} and {maximum}")
        return value

    return check


def number(what: str, value: Any, minimum: float, maximum: float) -> float:
    """A count of seconds and the like: an int or float within bounds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidError(f"invalid {what}: expected a number, got {_kind(value)}")
    if not minimum <= value <= maximum:  # also refuses NaN
        raise InvalidError(f"invalid {what}: must be between {minimum:g} and {maximum:g}")
    return value


def boolean() -> Check:
    def check(what: str, value: Any) -> Any:
        if not isinstance(value, bool):
            raise InvalidError(f"invalid {what}: expected true or false, got {_kind(value)}")
        return value

    return check


def timestamp(*, nullable: bool = False) -> Check:
    def check(what: str, value: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise InvalidError(
                f"invalid {what}: expected a timezone-aware datetime, got {_show(value)}"
            )
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise InvalidError(f"invalid {what}: out of range") from None

    return check


def as_now(now: datetime | None) -> datetime:
    return utcnow() if now is None else timestamp()("now", now)


def _walk_json(what: str, value: Any, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise InvalidError(f"invalid {what}: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        _check_string(what, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidError(f"invalid {what}: object keys must be strings, got {_kind(key)}")
            _check_string(what, key)
            _walk_json(what, item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _walk_json(what, item, depth + 1)


def json_object(*, nullable: bool = False) -> Check:
    """A JSON object (dict). None stores ``{}`` unless the column is nullable.

    The value is returned as a JSON round-trip copy, so what a store returns equals what a
    later read returns (tuples become lists) and the caller's dict is never shared.
    """

    def check(what: str, value: Any) -> Any:
        if value is None:
            return None if nullable else {}
        if not isinstance(value, dict):
            raise InvalidError(f"invalid {what}: expected a JSON object (dict), got {_kind(value)}")
        _walk_json(what, value, 0)
        try:
            encoded = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidError(f"invalid {what}: not JSON-serializable ({exc})") from None
        if len(encoded) > MAX_JSON_CHARS:
            raise InvalidError(f"invalid {what}: larger than {MAX_JSON_CHARS} bytes as JSON")
        return json.loads(encoded)

    return check


def check_limit(limit: Any) -> int:
    return integer(1, MAX_LIMIT)("limit", limit)


# --- cursors -----------------------------------------------------------------------------------


def _encode_cursor(values: Sequence[Any]) -> str:
    plain = [value.isoformat() if isinstance(value, datetime) else value for value in values]
    raw = json.dumps(plain, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: Any, columns: Sequence[sa.Column[Any]]) -> list[Any]:
    invalid = InvalidError(f"invalid cursor {_show(cursor)}: pass back a next_cursor unchanged")
    if not isinstance(cursor, str) or len(cursor) > 1000:
        raise invalid
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):  # bad base64, bad UTF-8, bad JSON
        raise invalid from None
    if not isinstance(raw, list) or len(raw) != len(columns):
        raise invalid
    values: list[Any] = []
    for column, value in zip(columns, raw, strict=True):
        try:
            if isinstance(column.type, schema.UtcDateTime):
                values.append(timestamp()("cursor", datetime.fromisoformat(value)))
            elif isinstance(column.type, sa.Integer):
                values.append(integer(-(2**63), 2**63 - 1)("cursor", value))
            else:
                values.append(text(schema.ID_LENGTH)("cursor", value))
        except (TypeError, ValueError, InvalidError):
            raise invalid from None
    return values


def _after(order: Sequence[tuple[sa.Column[Any], bool]], values: Sequence[Any]) -> Any:
    """Rows strictly after ``values`` in ``order`` (column, descending): the keyset predicate."""
    branches = []
    for i, (column, descending) in enumerate(order):
        equal = [col == value for (col, _), value in zip(order[:i], values[:i], strict=True)]
        beyond = column < values[i] if descending else column > values[i]
        branches.append(sa.and_(*equal, beyond))
    return sa.or_(*branches)


def keyset_page(
    conn: sa.Connection,
    query: sa.Select[Any],
    order: Sequence[tuple[sa.Column[Any], bool]],
    limit: int,
    cursor: str | None,
) -> Page:
    """One page of ``query`` in ``order`` (column, descending) after ``cursor``."""
    limit = check_limit(limit)
    if cursor is not None:
        columns = [column for column, _ in order]
        query = query.where(_after(order, _decode_cursor(cursor, columns)))
    query = query.order_by(*(c.desc() if descending else c.asc() for c, descending in order))
    items = [dict(row) for row in conn.execute(query.limit(limit + 1)).mappings()]
    if len(items) <= limit:
        return Page(items, None)
    items = items[:limit]
    return Page(items, _encode_cursor([items[-1][c.name] for c, _ in order]))


# --- the entity --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A column holding the id of a row of ``table``, checked explicitly before writes.

    ``same_workspace``: the referenced row must be in the writer's workspace.
    ``condition``: an extra clause the referenced row must satisfy (a note not deleted).
    """

    table: sa.Table
    label: str
    same_workspace: bool = True
    condition: Any = None


WORKSPACE = Ref(schema.workspaces, "workspace", same_workspace=False)


def lock_row(conn: sa.Connection, table: sa.Table, row_id: str) -> bool:
    """Lock one row until the transaction ends (PostgreSQL; SQLite has one writer anyway).

    FOR NO KEY UPDATE: it still lets other transactions insert rows referencing this one.
    Returns whether the row exists.
    """
    query = sa.select(table.c.id).where(table.c.id == row_id).with_for_update(key_share=True)
    return conn.execute(query).first() is not None


class Entity:
    """Create, get, list, update and delete the rows of one table, with validation.

    ``fields``: the columns a caller sets, each with its check. ``fixed``: fields set on create
    only. ``refs``: fields referencing other rows. ``unique``: column groups of the table's
    unique constraints, checked before writing so a duplicate is a ConflictError naming it.
    ``order``: the list order as (column, descending) pairs ending with a unique column.
    """

    def __init__(
        self,
        table: sa.Table,
        label: str,
        fields: Mapping[str, Check],
        *,
        fixed: Iterable[str] = ("workspace_id",),
        refs: Mapping[str, Ref] | None = None,
        unique: Iterable[tuple[str, ...]] = (),
        order: Sequence[tuple[str, bool]] = (("created_at", True), ("id", True)),
        prepare: Prepare | None = None,
    ) -> None:
        self.table = table
        self.label = label
        self.fields = dict(fields)
        self.fixed = frozenset(fixed)
        self.refs = dict(refs or {})
        self.unique = tuple(unique)
        self.order = tuple((table.c[name], descending) for name, descending in order)
        self.prepare = prepare
        self.updatable = sorted(set(self.fields) - self.fixed)

    def check(self, values: Mapping[str, Any]) -> Row:
        """Validate and normalize field values (raises InvalidError naming the field)."""
        for name in values:
            if name not in self.fields:
                raise InvalidError(f"unknown {self.label} field {name!r}")
        return {name: self.fields[name](f"{self.label} {name}", v) for name, v in values.items()}

    # reads

    def find(self, conn: sa.Connection, entity_id: Any, *, for_update: bool = False) -> Row | None:
        check_id(f"{self.label} id", entity_id)
        query = sa.select(self.table).where(self.table.c.id == entity_id)
        if for_update:
            query = query.with_for_update(key_share=True)
        row = conn.execute(query).mappings().first()
        return None if row is None else dict(row)

    def get(self, conn: sa.Connection, entity_id: str, *, for_update: bool = False) -> Row:
        """The row with this id, or NotFoundError. ``for_update`` locks it (PostgreSQL)."""
        row = self.find(conn, entity_id, for_update=for_update)
        if row is None:
            raise NotFoundError(f"{self.label} {entity_id!r} not found")
        return row

    def page(
        self,
        conn: sa.Connection,
        *,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        **filters: Any,
    ) -> Page:
        """One page in ``self.order`` after ``cursor``.

        ``filters``: field=value (or a list/tuple/set of values); None means no filter. A
        filter on a reference (the workspace) checks that the referenced row exists.
        """
        limit = check_limit(limit)
        conditions = []
        for name, value in filters.items():
            if value is None:
                continue
            column, what = self.table.c[name], f"{self.label} {name} filter"
            if isinstance(value, _COLLECTIONS):
                conditions.append(column.in_([self.fields[name](what, v) for v in value]))
                continue
            conditions.append(column == self.fields[name](what, value))
            if name in self.refs:
                self._check_refs(conn, {name: value}, [name], scoped=False)
        return keyset_page(
            conn, sa.select(self.table).where(*conditions), self.order, limit, cursor
        )

    # writes

    def create(
        self,
        conn: sa.Connection,
        values: Mapping[str, Any],
        *,
        entity_id: str | None = None,
        now: datetime | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Row:
        """Insert a row from field ``values`` plus trusted ``extra`` columns; returns it."""
        now = as_now(now)
        row: Row = {column.name: None for column in self.table.c}
        row["id"] = new_id() if entity_id is None else check_id(f"{self.label} id", entity_id)
        row.update(self.check(values))
        row.update(extra or {})
        row["created_at"] = now
        if "updated_at" in row:
            row["updated_at"] = now
        if self.prepare is not None:
            self.prepare(conn, None, row, now)
        self._check_all(conn, row, self.refs, self.unique, new=entity_id is not None)
        self._write(conn, self.table.insert().values(row), row, new=entity_id is not None)
        return row

    def update(
        self,
        conn: sa.Connection,
        entity_id: str,
        /,
        *,
        now: datetime | None = None,
        **changes: Any,
    ) -> Row:
        """Change updatable fields; unknown or fixed ones are an InvalidError naming them."""
        for name in changes:
            if name in self.fixed or (name in self.table.c and name not in self.fields):
                raise InvalidError(f"{self.label} field {name!r} cannot be updated")
            if name not in self.fields:
                raise InvalidError(
                    f"unknown {self.label} field {name!r} (updatable: {', '.join(self.updatable)})"
                )
        now = as_now(now)
        clean = self.check(changes)
        old = self.get(conn, entity_id, for_update=True)
        return self._write_changes(conn, old, clean, now)

    def _write_changes(
        self, conn: sa.Connection, old: Row, changes: Mapping[str, Any], now: datetime
    ) -> Row:
        """Apply already checked ``changes`` to the stored row ``old``; returns the new row."""
        row = {**old, **changes}
        if self.prepare is not None:
            self.prepare(conn, old, row, now)
        changed = {name for name, value in row.items() if old[name] != value}
        if not changed:
            return old
        refs = {name: ref for name, ref in self.refs.items() if name in changed}
        unique = [group for group in self.unique if changed.intersection(group)]
        self._check_all(conn, row, refs, unique, new=False)
        values = {name: row[name] for name in changed}
        if "updated_at" in row:
            row["updated_at"] = values["updated_at"] = now
        statement = self.table.update().where(self.table.c.id == old["id"]).values(values)
        self._write(conn, statement, row, new=False)
        return row

    def delete(self, conn: sa.Connection, entity_id: str) -> None:
        """Delete the row (the schema cascades to what it owns), or NotFoundError."""
        check_id(f"{self.label} id", entity_id)
        result = conn.execute(self.table.delete().where(self.table.c.id == entity_id))
        if result.rowcount == 0:
            raise NotFoundError(f"{self.label} {entity_id!r} not found")

    # checks against stored rows

    def _check_all(
        self,
        conn: sa.Connection,
        row: Row,
        refs: Iterable[str],
        unique: Iterable[tuple[str, ...]],
        *,
        new: bool,
    ) -> None:
        self._check_refs(conn, row, refs)
        if new and self.find(conn, row["id"]) is not None:
            raise ConflictError(f"{self.label} {row['id']!r} already exists")
        for group in unique:
            if any(row[name] is None for name in group):
                continue  # NULLs never clash in a unique constraint
            query = sa.select(self.table.c.id).where(
                self.table.c.id != row["id"], *(self.table.c[n] == row[n] for n in group)
            )
            if conn.execute(query.limit(1)).first() is not None:
                named = " and ".join(f"{name} {row[name]!r}" for name in group)
                raise ConflictError(f"{self.label} with {named} already exists")

    def _check_refs(
        self, conn: sa.Connection, row: Mapping[str, Any], names: Iterable[str], scoped: bool = True
    ) -> None:
        for name in names:
            ref, value = self.refs[name], row[name]
            if value is None:
                continue
            query = sa.select(ref.table).where(ref.table.c.id == value)
            if ref.condition is not None:
                query = query.where(ref.condition)
            found = conn.execute(query).mappings().first()
            if found is None:
                raise NotFoundError(f"{ref.label} {value!r} not found")
            if scoped and ref.same_workspace and found["workspace_id"] != row["workspace_id"]:
                raise NotFoundError(
                    f"{ref.label} {value!r} not found in workspace {row['workspace_id']!r}"
                )

    def _write(self, conn: sa.Connection, statement: Any, row: Row, *, new: bool) -> None:
        try:
            with conn.begin_nested():
                conn.execute(statement)
        except sa_exc.IntegrityError:
            # Our checks passed, so a concurrent transaction (PostgreSQL) committed a clashing
            # row or deleted a referenced one meanwhile. The savepoint undid our statement;
            # checking again names what clashed, now that the other commit is visible.
            self._check_all(conn, row, self.refs, self.unique, new=new)
            raise ConflictError(
                f"{self.label} {row['id']!r} clashed with a concurrent change; retry"
            ) from None


MISSING = object()


def workspace_of(conn: sa.Connection, table: sa.Table, row_id: str) -> Any:
    """The workspace a row belongs to (None for rows of no workspace, such as server-wide
    jobs), or MISSING when there is no such row. A workspace belongs to itself."""
    column = table.c.id if table is schema.workspaces else table.c.workspace_id
    found = conn.execute(sa.select(column).where(table.c.id == row_id)).first()
    return MISSING if found is None else found[0]
