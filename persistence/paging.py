"""Keyset paging: one page of a query in a fixed order, and an opaque cursor for the next.

A cursor is the last row's sort key, base64 JSON; it is checked like any input when it comes
back, so a forged one is an InvalidError, never a driver error.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from . import limits, schema
from .checks import integer, show, text, timestamp
from .errors import InvalidError

Row = dict[str, Any]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class Page:
    """One page of a list; pass ``next_cursor`` back to get the next one (None: no more)."""

    items: list[Row]
    next_cursor: str | None


def check_limit(limit: Any) -> int:
    return integer(1, MAX_LIMIT)("limit", limit)


# --- cursors -----------------------------------------------------------------------------------


def _encode_cursor(values: Sequence[Any]) -> str:
    plain = [value.isoformat() if isinstance(value, datetime) else value for value in values]
    raw = json.dumps(plain, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: Any, columns: Sequence[sa.Column[Any]]) -> list[Any]:
    invalid = InvalidError(f"invalid cursor {show(cursor)}: pass back a next_cursor unchanged")
    if not isinstance(cursor, str) or len(cursor) > limits.CURSOR_CHARS:
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
