"""Schema migrations: upgrade to head, report the current revision, refuse a stale schema.

Checking the revision needs no Alembic (it is one SELECT): a running server imports Alembic
only when it really migrates, which keeps its memory down. HEAD and REVISIONS name the
migrations in migrations/versions; a test checks them against Alembic's own view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .engine import Database
from .errors import SchemaError
from .stores import workspaces

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
REVISIONS = ("0001", "0002", "0003")  # oldest first
HEAD = REVISIONS[-1]

# The full-text index is dialect-specific and outside schema.metadata (see migration 0003):
# comparing the database with the MetaData leaves these out.
DIALECT_TABLE_PREFIX = "note_fts"  # the FTS5 table and its shadow tables (SQLite)
DIALECT_COLUMNS = {("note_search", "document")}  # the generated tsvector (PostgreSQL)
DIALECT_INDEXES = {"ix_note_search_document"}


def is_dialect_table(name: str) -> bool:
    return name.startswith(DIALECT_TABLE_PREFIX)


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic's filter for comparing a database with schema.metadata."""
    if type_ == "table":
        return not is_dialect_table(name or "")
    if type_ == "column":
        table = getattr(getattr(obj, "table", None), "name", None)
        return (table, name) not in DIALECT_COLUMNS
    if type_ == "index":
        return name not in DIALECT_INDEXES
    return True


def alembic_config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return HEAD


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def describe(self) -> str:
        if self.up_to_date:
            return f"up to date (revision {self.head})"
        if self.current is None:
            return f"not migrated (no schema; head is {self.head})"
        return f"outdated (at {self.current}, head is {self.head})"


def _current_revision(connection: sa.Connection) -> str | None:
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def status(db: Database) -> SchemaStatus:
    with db.read() as connection:
        return SchemaStatus(current=_current_revision(connection), head=HEAD)


def upgrade(db: Database, revision: str = "head") -> SchemaStatus:
    """Migrate the database to ``revision`` (head by default) in one transaction: the schema
    only (`coscribe db migrate` and prepare() then add the default workspace)."""
    from alembic import command

    with db.begin() as connection:
        command.upgrade(alembic_config(connection), revision)
    return status(db)


def ensure_default_workspace(db: Database) -> None:
    """The workspace "default" exists from the first migration or start on, so the first
    commands an operator types (`coscribe token create --workspace default ...`) work before
    any note exists. Data, not schema: created in code, idempotently, never by a migration.
    Looked for first without the write lock, which a running server may be holding."""
    with db.read() as connection:
        if workspaces.find(connection, workspaces.DEFAULT_ID) is not None:
            return
    with db.begin() as connection:
        workspaces.ensure_default(connection)


def ensure_current(db: Database) -> SchemaStatus:
    """Raise SchemaError unless the schema is exactly at head."""
    state = status(db)
    if state.up_to_date:
        return state
    if state.current is not None and state.current not in REVISIONS:
        raise SchemaError(
            f"database schema is at {state.current}, which this version of coscribe does not know "
            "(it was migrated by a newer version)"
        )
    raise SchemaError(f"database schema is {state.describe()}: run `coscribe db migrate` first")


def prepare(db: Database, *, writes: bool = True) -> SchemaStatus:
    """What a server or command does at start: migrate the embedded databases, check
    PostgreSQL; then the default workspace (ensure_default_workspace), unless the command
    must not write (a dry run changes nothing, not even that)."""
    if db.driver in ("sqlite", "memory"):
        state = status(db)
        state = state if state.up_to_date else upgrade(db)
    else:
        state = ensure_current(db)
    if writes:
        ensure_default_workspace(db)
    return state
