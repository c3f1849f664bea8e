"""One MetaData for every table, valid on SQLite and PostgreSQL.

Ids are strings (uuid4 hex unless the caller chooses one, as notes may). Timestamps are stored
in UTC and always read back timezone-aware. JSON columns are JSONB on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator

from . import limits

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is UTC on the way in and timezone-aware on the way out.

    SQLite has no timezone type; storing naive UTC there and timestamptz on PostgreSQL keeps
    comparisons (``run_after <= now``) correct on both.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; coscribe stores timezone-aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSON: Any = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants a 64-bit identity.
BigId: Any = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

ID_LENGTH = limits.ID_CHARS


def _id(name: str = "id") -> sa.Column[str]:
    return sa.Column(name, sa.String(ID_LENGTH), primary_key=True)


def _workspace_fk(nullable: bool = False) -> sa.Column[str]:
    return sa.Column(
        "workspace_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"),
        nullable=nullable,
    )


def _timestamps() -> list[sa.Column[datetime]]:
    return [
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    ]


workspaces = sa.Table(
    "workspaces",
    metadata,
    _id(),
    sa.Column("slug", sa.String(limits.SLUG_CHARS), nullable=False, unique=True),
    sa.Column("name", sa.String(limits.NAME_CHARS), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    # Per-workspace overrides (retention periods and the like); absent keys use server defaults.
    sa.Column("settings", JSON, nullable=False),
    *_timestamps(),
)

# --- notes -------------------------------------------------------------------------------------

notes = sa.Table(
    "notes",
    metadata,
    _id(),
    _workspace_fk(),
    sa.Column("title", sa.String(limits.TITLE_CHARS), nullable=False, server_default=""),
    # Highest seq ever allocated in note_updates. Appenders bump it with a row lock, so seqs of
    # one note are allocated and committed in order and never reused after compaction.
    sa.Column("last_seq", sa.BigInteger(), nullable=False, server_default="0"),
    *_timestamps(),
    sa.Column("deleted_at", UtcDateTime(), nullable=True),
    sa.Index(None, "workspace_id", "updated_at"),
    sa.Index(None, "deleted_at"),
)

note_updates = sa.Table(
    "note_updates",
    metadata,
    sa.Column(
        "note_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("notes.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("update", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

note_snapshots = sa.Table(
    "note_snapshots",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "note_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("notes.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # The snapshot holds every update with seq <= through_seq.
    sa.Column("through_seq", sa.BigInteger(), nullable=False),
    sa.Column("state", sa.LargeBinary(), nullable=False),
    sa.Column("state_vector", sa.LargeBinary(), nullable=False),
    # compaction | manual | auto | restore: why the snapshot was taken.
    sa.Column("kind", sa.String(limits.STATUS_CHARS), nullable=False),
    sa.Column("label", sa.String(limits.LABEL_CHARS), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index(None, "note_id", "through_seq"),
    sa.Index(None, "note_id", "created_at"),
)

# --- agents, conversations, tasks, codebases ---------------------------------------------------

agents = sa.Table(
    "agents",
    metadata,
    _id(),
    _workspace_fk(),
    sa.Column("name", sa.String(limits.NAME_CHARS), nullable=False),
    # What the agent does on the platform: coder, reviewer, planner, tester, ...
    sa.Column("role", sa.String(limits.KIND_CHARS), nullable=False),
    sa.Column("model", sa.String(limits.NAME_CHARS), nullable=True),
    sa.Column("instructions", sa.Text(), nullable=False, server_default=""),
    sa.Column("config", JSON, nullable=False),
    sa.Column("status", sa.String(limits.STATUS_CHARS), nullable=False),
    sa.Column("last_seen_at", UtcDateTime(), nullable=True),
    *_timestamps(),
    sa.UniqueConstraint("workspace_id", "name"),
    sa.Index(None, "workspace_id", "status"),
)

codebases = sa.Table(
    "codebases",
    metadata,
    _id(),
    _workspace_fk(),
    sa.Column("name", sa.String(limits.NAME_CHARS), nullable=False),
    sa.Column("repo_url", sa.String(limits.PATH_CHARS), nullable=True),
    sa.Column(
        "default_branch", sa.String(limits.NAME_CHARS), nullable=False, server_default="main"
    ),
    sa.Column("path", sa.String(limits.PATH_CHARS), nullable=True),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("language", sa.String(limits.KIND_CHARS), nullable=True),
    *_timestamps(),
    sa.UniqueConstraint("workspace_id", "name"),
)

conversations = sa.Table(
    "conversations",
    metadata,
    _id(),
    _workspace_fk(),
    sa.Column("title", sa.String(limits.TITLE_CHARS), nullable=False, server_default=""),
    sa.Column("agent_id", sa.String(ID_LENGTH), sa.ForeignKey("agents.id", ondelete="SET NULL")),
    sa.Column("status", sa.String(limits.STATUS_CHARS), nullable=False),
    *_timestamps(),
    sa.Index(None, "workspace_id", "status"),
    sa.Index(None, "agent_id"),
)

conversation_messages = sa.Table(
    "conversation_messages",
    metadata,
    _id(),
    sa.Column(
        "conversation_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # Position in the conversation, allocated by the store; keeps order stable under equal times.
    sa.Column("seq", sa.BigInteger(), nullable=False),
    # user | assistant | system | tool
    sa.Column("role", sa.String(limits.STATUS_CHARS), nullable=False),
    sa.Column("author", sa.String(limits.AUTHOR_CHARS), nullable=True),
    sa.Column("content", sa.Text(), nullable=False),
    sa.Column("metadata", JSON, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("conversation_id", "seq"),
)

tasks = sa.Table(
    "tasks",
    metadata,
    _id(),
    _workspace_fk(),
    sa.Column("title", sa.String(limits.TITLE_CHARS), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    # todo | in_progress | blocked | done | cancelled
    sa.Column("status", sa.String(limits.STATUS_CHARS), nullable=False),
    sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("assignee_id", sa.String(ID_LENGTH), sa.ForeignKey("agents.id", ondelete="SET NULL")),
    sa.Column(
        "codebase_id", sa.String(ID_LENGTH), sa.ForeignKey("codebases.id", ondelete="SET NULL")
    ),
    sa.Column("note_id", sa.String(ID_LENGTH), sa.ForeignKey("notes.id", ondelete="SET NULL")),
    *_timestamps(),
    sa.Column("completed_at", UtcDateTime(), nullable=True),
    sa.Index(None, "workspace_id", "status"),
    sa.Index(None, "assignee_id"),
)

task_dependencies = sa.Table(
    "task_dependencies",
    metadata,
    sa.Column(
        "task_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("tasks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "depends_on_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("tasks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.CheckConstraint("task_id <> depends_on_id", name="not_self"),
    sa.Index(None, "depends_on_id"),
)

# --- jobs ------------------------------------------------------------------------------------

background_tasks = sa.Table(
    "background_tasks",
    metadata,
    _id(),
    _workspace_fk(nullable=True),
    sa.Column("kind", sa.String(limits.KIND_CHARS), nullable=False),
    sa.Column("payload", JSON, nullable=False),
    # queued | running | succeeded | failed | cancelled
    sa.Column("status", sa.String(limits.STATUS_CHARS), nullable=False),
    sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="5"),
    sa.Column("run_after", UtcDateTime(), nullable=False),
    sa.Column("locked_by", sa.String(limits.WORKER_CHARS), nullable=True),
    sa.Column("locked_until", UtcDateTime(), nullable=True),
    sa.Column("result", JSON, nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("schedule_id", sa.String(ID_LENGTH), nullable=True),
    *_timestamps(),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    # The claim query: next runnable job by priority and time.
    sa.Index(None, "status", "run_after"),
    sa.Index(None, "workspace_id", "status"),
    sa.Index(None, "kind", "status"),
)

schedules = sa.Table(
    "schedules",
    metadata,
    _id(),
    _workspace_fk(nullable=True),
    sa.Column("name", sa.String(limits.NAME_CHARS), nullable=False, unique=True),
    sa.Column("cron", sa.String(limits.CRON_CHARS), nullable=False),
    sa.Column("timezone", sa.String(limits.KIND_CHARS), nullable=False, server_default="UTC"),
    sa.Column("job_kind", sa.String(limits.KIND_CHARS), nullable=False),
    sa.Column("job_payload", JSON, nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("next_run_at", UtcDateTime(), nullable=True),
    sa.Column("last_run_at", UtcDateTime(), nullable=True),
    *_timestamps(),
    sa.Index(None, "enabled", "next_run_at"),
)

# --- access ----------------------------------------------------------------------------------

tokens = sa.Table(
    "tokens",
    metadata,
    _id(),
    # The workspace an editor or viewer token may reach; an admin token reaches every one and
    # may have none. Deleting a workspace deletes its tokens, and so ends their sessions.
    _workspace_fk(nullable=True),
    sa.Column("name", sa.String(limits.NAME_CHARS), nullable=False, server_default=""),
    sa.Column("role", sa.String(limits.STATUS_CHARS), nullable=False),  # admin | editor | viewer
    # SHA-256 of the whole token. The secret is 256 random bits, so a plain hash is as good as
    # a slow one and costs microseconds per request; the token itself is never stored.
    sa.Column("secret_hash", sa.String(limits.SECRET_HASH_CHARS), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.Index(None, "workspace_id"),
)

# --- search, the change feed, webhooks --------------------------------------------------------

# What the search index knows of each note: its body as last rendered (the base of the next
# "changed" event's patch), and the normalized words both dialects index (persistence/search.py).
# The full-text index itself is dialect-specific and lives outside this MetaData: an FTS5
# table kept in step by triggers on SQLite, a generated tsvector column with a GIN index on
# PostgreSQL (migration 0003; migrate.DIALECT_OBJECTS names them).
note_search = sa.Table(
    "note_search",
    metadata,
    # An INTEGER PRIMARY KEY on SQLite: the FTS5 table refers to rows by it, and an implicit
    # rowid could change under VACUUM.
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "note_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("notes.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    sa.Column("title_terms", sa.Text(), nullable=False),
    sa.Column("body_terms", sa.Text(), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    # The note's last_seq when it was indexed: a note whose last_seq is ahead is stale.
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.Column("indexed_at", UtcDateTime(), nullable=False),
)

# Named counters. "event" is the last event id handed out (ids are allocated under its row
# lock, so they commit in order and a reader polling `id > last` never skips one);
# "event_pruned" is the highest id retention removed (a Last-Event-ID below it has expired).
counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("value", sa.BigInteger(), nullable=False),
)

# The durable change feed: what happened to notes, in order, for SSE clients and webhooks.
note_events = sa.Table(
    "note_events",
    metadata,
    sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
    _workspace_fk(),
    # No foreign key: a note purged by retention keeps its history here until that expires.
    sa.Column("note_id", sa.String(ID_LENGTH), nullable=False),
    # created | renamed | deleted | restored | changed
    sa.Column("kind", sa.String(limits.STATUS_CHARS), nullable=False),
    sa.Column("data", JSON, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index(None, "created_at"),
)

webhooks = sa.Table(
    "webhooks",
    metadata,
    _id(),
    _workspace_fk(),
    sa.Column("url", sa.String(limits.PATH_CHARS), nullable=False),
    # Kept as given: every delivery is signed with it (HMAC-SHA256), so it cannot be hashed.
    sa.Column("secret", sa.String(limits.WEBHOOK_SECRET_CHARS), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    # Attempts per delivery before it is marked failed (retried with backoff meanwhile).
    sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="8"),
    *_timestamps(),
    sa.Index(None, "workspace_id"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    _id(),
    sa.Column(
        "webhook_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event_id", sa.BigInteger(), nullable=False),
    # pending | retrying | succeeded | failed
    sa.Column("status", sa.String(limits.STATUS_CHARS), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_status_code", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    *_timestamps(),
    sa.Column("delivered_at", UtcDateTime(), nullable=True),
    sa.Index(None, "webhook_id", "created_at"),
    sa.Index(None, "status", "updated_at"),
)
