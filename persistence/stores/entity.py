"""The Entity base of the plain stores: the entity modules only declare their fields.

Every function takes the caller's Connection and never commits: the caller owns the
transaction. Rows are plain dicts whose datetimes are timezone-aware UTC.

Fields are checked (persistence.checks) and references looked up explicitly before writing.
What that cannot foresee is a concurrent transaction (PostgreSQL) committing a clashing row
between our check and our write: such writes run in a savepoint and come back as
ConflictError or NotFoundError, with the savepoint undone so nothing is left half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from .. import schema
from ..checks import Check, as_now, check_id, new_id
from ..errors import ConflictError, InvalidError, NotFoundError
from ..paging import DEFAULT_LIMIT, Page, Row, check_limit, keyset_page

# Called on every write after the fields are checked: (conn, old row or None, new row, now).
# It may set derived columns on the new row or raise a StoreError.
Prepare = Callable[[sa.Connection, "Row | None", Row, datetime], None]

_COLLECTIONS = (list, tuple, set, frozenset)


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
