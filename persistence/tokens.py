"""Access tokens: issue, verify, list, revoke. Only a hash of each token is stored.

A token reads ``cs_<id>_<secret>``: the id finds the row (and names the token in lists and
logs), the 256-bit secret proves possession. The stored hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from . import schema
from .checks import as_now
from .errors import InvalidError, NotFoundError
from .paging import Row
from .stores import workspaces

ROLES = ("admin", "editor", "viewer")
PREFIX = "cs"
_TOKEN = re.compile(rf"{PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{43}})")
MAX_TOKEN_CHARS = 200  # anything longer is not a token; refused before hashing

_tokens = schema.tokens


@dataclass(frozen=True)
class Issued:
    """A new token: its row (no secret in it) and the token itself, shown once."""

    row: Row
    token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _public(row: Any) -> Row:
    found = dict(row)
    found.pop("secret_hash", None)
    return found


def issue(
    conn: sa.Connection,
    role: str,
    *,
    workspace: str | None = None,
    name: str = "",
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> Issued:
    """A new token. Editors and viewers belong to one workspace (id or slug). Admin tokens
    reach every workspace; one given a workspace keeps it as its home (where the web editor
    starts, and where its new notes go) and ends with it."""
    now = as_now(now)
    if role not in ROLES:
        raise InvalidError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
    if workspace is None and role != "admin":
        article = "an" if role[0] in "aeiou" else "a"
        raise InvalidError(f"{article} {role} token needs a workspace (--workspace ID or SLUG)")
    workspace_id = None if workspace is None else workspaces.resolve(conn, workspace)
    if expires_at is not None and expires_at <= now:
        raise InvalidError("the expiry is in the past")
    if len(name) > 200:
        raise InvalidError("the token name is over 200 characters")
    token_id = secrets.token_hex(8)
    token = f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
    row = {
        "id": token_id,
        "workspace_id": workspace_id,
        "name": name,
        "role": role,
        "secret_hash": _hash(token),
        "created_at": now,
        "expires_at": expires_at,
        "revoked_at": None,
    }
    conn.execute(_tokens.insert().values(**row))
    return Issued(_public(row), token)


def parse(token: str) -> str | None:
    """The token's id, or None when the string is not shaped like a token."""
    if len(token) > MAX_TOKEN_CHARS:
        return None
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


@dataclass(frozen=True)
class Verdict:
    """What a presented token is worth: the row when valid, else why not (for the log)."""

    row: Row | None
    reason: str
    token_id: str | None = None


def verify(conn: sa.Connection, token: str, *, now: datetime | None = None) -> Verdict:
    now = as_now(now)
    token_id = parse(token)
    if token_id is None:
        return Verdict(None, "malformed token")
    found = conn.execute(sa.select(_tokens).where(_tokens.c.id == token_id)).mappings().first()
    # Compare even when the id is unknown, so timing does not tell ids apart.
    expected = found["secret_hash"] if found else "0" * 64
    if not hmac.compare_digest(expected, _hash(token)) or found is None:
        return Verdict(None, "unknown token", token_id)
    if found["revoked_at"] is not None:
        return Verdict(None, "revoked token", token_id)
    if found["expires_at"] is not None and found["expires_at"] <= now:
        return Verdict(None, "expired token", token_id)
    return Verdict(_public(found), "valid", token_id)


def _active(now: datetime) -> Any:
    return sa.and_(
        _tokens.c.revoked_at.is_(None),
        sa.or_(_tokens.c.expires_at.is_(None), _tokens.c.expires_at > now),
    )


def active_ids(conn: sa.Connection, ids: Iterable[str], *, now: datetime | None = None) -> set[str]:
    """Which of these token ids are still valid (not revoked, expired or deleted)."""
    ids = sorted(set(ids))
    if not ids:
        return set()
    now = as_now(now)
    query = sa.select(_tokens.c.id).where(_tokens.c.id.in_(ids), _active(now))
    return set(conn.execute(query).scalars())


def count(conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(_tokens)).scalar_one()


def list_tokens(
    conn: sa.Connection, *, include_inactive: bool = False, now: datetime | None = None
) -> list[Row]:
    """Tokens, oldest first; without include_inactive only those still valid."""
    query = sa.select(_tokens).order_by(_tokens.c.created_at, _tokens.c.id)
    if not include_inactive:
        query = query.where(_active(as_now(now)))
    return [_public(row) for row in conn.execute(query).mappings()]


def name_of(conn: sa.Connection, token_id: str | None) -> str:
    """A token's name ("" for none, or for no such token): who made a change, in words."""
    if token_id is None:
        return ""
    found = conn.execute(sa.select(_tokens.c.name).where(_tokens.c.id == token_id)).first()
    return found[0] if found else ""


def revoke(conn: sa.Connection, token_id: str, *, now: datetime | None = None) -> Row:
    """Revoke a token by id (or by the whole token). Revoking twice keeps the first time."""
    token_id = parse(token_id) or token_id
    found = conn.execute(sa.select(_tokens).where(_tokens.c.id == token_id)).mappings().first()
    if found is None:
        raise NotFoundError(f"token {token_id!r} not found")
    if found["revoked_at"] is None:
        conn.execute(
            _tokens.update().where(_tokens.c.id == token_id).values(revoked_at=as_now(now))
        )
    row = conn.execute(sa.select(_tokens).where(_tokens.c.id == token_id)).mappings().one()
    return _public(row)
