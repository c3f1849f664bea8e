"""Workspaces: they own notes, agents, conversations, tasks, codebases and schedules.

Deleting a workspace deletes everything it owns (the schema cascades).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .. import limits, schema
from ..checks import json_object, text
from ..errors import ConflictError, InvalidError, NotFoundError
from ..paging import DEFAULT_LIMIT, Page, Row
from .entity import Entity

DEFAULT_ID = "default"
DEFAULT_SLUG = "default"
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def _reserve_default_slug(_conn: sa.Connection, _old: Row | None, row: Row, _now: datetime) -> None:
    # ensure_default() must always be able to create its workspace: nobody else gets the slug.
    if row["slug"] == DEFAULT_SLUG and row["id"] != DEFAULT_ID:
        raise InvalidError(f"invalid workspace slug: {DEFAULT_SLUG!r} is reserved")


_workspaces = Entity(
    schema.workspaces,
    "workspace",
    {
        "slug": text(
            limits.SLUG_CHARS, pattern=SLUG, hint="expected a-z, 0-9 and '-', not starting with '-'"
        ),
        "name": text(limits.NAME_CHARS, blank=False),
        "description": text(),
        "settings": json_object(),
    },
    fixed=(),
    unique=[("slug",)],
    prepare=_reserve_default_slug,
)

get = _workspaces.get
find = _workspaces.find
update = _workspaces.update
delete = _workspaces.delete


def create(
    conn: sa.Connection,
    slug: str,
    name: str | None = None,
    *,
    description: str = "",
    settings: dict[str, Any] | None = None,
    id: str | None = None,
) -> Row:
    """Create a workspace; ``name`` defaults to the slug, ``id`` to a new uuid4 hex."""
    values = {
        "slug": slug,
        "name": slug if name is None else name,
        "description": description,
        "settings": settings,
    }
    return _workspaces.create(conn, values, entity_id=id)


def resolve(conn: sa.Connection, workspace: str) -> str:
    """A workspace's id, from its id or its slug (what people type on a command line)."""
    found = find_id(conn, workspace)
    if found is None:
        raise NotFoundError(f"workspace {workspace!r} not found")
    return found


def find_id(conn: sa.Connection, workspace: str) -> str | None:
    """The id of the workspace with this id or else this slug; None when there is none.
    An id wins over another workspace's equal slug, so an id always means what it meant."""
    table = schema.workspaces
    query = (
        sa.select(table.c.id)
        .where(sa.or_(table.c.id == workspace, table.c.slug == workspace))
        .order_by((table.c.id == workspace).desc())
        .limit(1)
    )
    return conn.execute(query).scalar_one_or_none()


def get_by_slug(conn: sa.Connection, slug: str) -> Row:
    slug = _workspaces.fields["slug"]("workspace slug", slug)
    row = conn.execute(sa.select(schema.workspaces).where(schema.workspaces.c.slug == slug))
    found = row.mappings().first()
    if found is None:
        raise NotFoundError(f"workspace with slug {slug!r} not found")
    return dict(found)


def list_workspaces(
    conn: sa.Connection, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> Page:
    """All workspaces, newest first."""
    return _workspaces.page(conn, limit=limit, cursor=cursor)


def ensure_default(conn: sa.Connection) -> Row:
    """The workspace with id and slug "default", created if missing (idempotent, race-safe)."""
    row = _workspaces.find(conn, DEFAULT_ID)
    if row is not None:
        return row
    try:
        return create(conn, DEFAULT_SLUG, "Default", id=DEFAULT_ID)
    except ConflictError:
        # Another transaction created it after our read (PostgreSQL; SQLite has one writer).
        # create() ran in a savepoint, so this transaction is still usable.
        return _workspaces.get(conn, DEFAULT_ID)
