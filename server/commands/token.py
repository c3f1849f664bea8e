"""`coscribe token create | list | revoke`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from persistence import schema, tokens

from .base import UserError, current_database, user_errors

_DURATION = re.compile(r"(\d{1,6})([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(raw: str, now: datetime) -> datetime:
    """ "30d", "12h", "90m", "2w" from now, or an ISO 8601 date or time (UTC if no zone)."""
    match = _DURATION.fullmatch(raw.strip())
    if match:
        return now + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise UserError(
            f"--expires: expected a duration such as 30d, 12h or 90m, or an ISO date such as "
            f"2027-01-31, got {raw!r}"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@click.group(epilog="Example: coscribe token create --workspace default --role editor")
def token() -> None:
    """Access tokens for the API, the websocket and the web editor."""


@token.command(
    epilog="Example: coscribe token create --workspace team --role viewer --expires 30d "
    "--name 'search indexer'"
)
@click.option(
    "--workspace",
    help="Workspace id or slug the token reaches (editor and viewer; an admin's home).",
)
@click.option(
    "--role",
    type=click.Choice(tokens.ROLES),
    required=True,
    help="admin: every workspace; editor: read and write one; viewer: read one.",
)
@click.option("--expires", help="When it stops working: a duration (30d, 12h) or an ISO date.")
@click.option("--name", default="", help="What the token is for, shown by `token list`.")
@user_errors
def create(workspace: str | None, role: str, expires: str | None, name: str) -> None:
    """Create a token and print it. Only its hash is stored: it cannot be shown again."""
    now = datetime.now(UTC)
    expires_at = parse_expiry(expires, now) if expires else None
    with current_database() as (_settings, db), db.begin() as conn:
        issued = tokens.issue(
            conn, role, workspace=workspace, name=name, expires_at=expires_at, now=now
        )
        slugs = _slugs(conn)
    row = issued.row
    reach = "every workspace" if role == "admin" else f"workspace {_named(row, slugs)}"
    until = f", until {row['expires_at']:%Y-%m-%d %H:%M} UTC" if row["expires_at"] else ""
    click.echo(f"token {row['id']}: {role} of {reach}{until}", err=True)
    click.echo("Keep it now: it is shown only this once.", err=True)
    click.echo(issued.token)


@token.command("list", epilog="Example: coscribe token list --all")
@click.option("--all", "everything", is_flag=True, help="Also revoked and expired tokens.")
@user_errors
def list_tokens(everything: bool) -> None:
    """List tokens (never their secrets): id, role, workspace (slug and id), name, expiry,
    state."""
    now = datetime.now(UTC)
    with current_database() as (_settings, db), db.read() as conn:
        rows = tokens.list_tokens(conn, include_inactive=everything, now=now)
        slugs = _slugs(conn)
    table = Table("id", "role", "workspace", "name", "created", "expires", "state")
    for row in rows:
        every = "(every)" if row["role"] == "admin" else "-"
        table.add_row(
            row["id"],
            row["role"],
            _named(row, slugs) if row["workspace_id"] else every,
            row["name"],
            _when(row["created_at"]),
            _when(row["expires_at"]),
            _state(row, now),
        )
    Console(width=160).print(table)
    if not rows:
        click.echo("no tokens" + ("" if everything else " in force (--all shows every one)"))


@token.command(epilog="Example: coscribe token revoke 3f9a1c0e5b7d2468")
@click.argument("token_id")
@user_errors
def revoke(token_id: str) -> None:
    """Revoke a token (by its id, or the token itself). A running server closes its
    websockets within a few seconds; its next API call is refused."""
    with current_database() as (_settings, db), db.begin() as conn:
        row = tokens.revoke(conn, token_id)
    click.echo(f"token {row['id']} revoked at {row['revoked_at']:%Y-%m-%d %H:%M:%S} UTC")


def _slugs(conn: sa.Connection) -> dict[str, str]:
    """Every workspace's slug by id: what people know workspaces by."""
    table = schema.workspaces
    return dict(conn.execute(sa.select(table.c.id, table.c.slug)).all())


def _named(row: dict, slugs: dict[str, str]) -> str:
    """The token's workspace by slug, with its id when the two differ."""
    workspace_id = row["workspace_id"]
    slug = slugs.get(workspace_id)
    return workspace_id if slug in (None, workspace_id) else f"{slug} ({workspace_id})"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _state(row: dict, now: datetime) -> str:
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    return "active"
