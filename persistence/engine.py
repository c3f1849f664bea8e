"""The one place for dialect differences: SQLite pragmas and transactions, the PostgreSQL pool."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

from .config import DatabaseConfig


class Database:
    """An Engine plus what it was built from. ``begin()`` opens a transaction the caller owns."""

    def __init__(self, config: DatabaseConfig, *, echo: bool = False) -> None:
        self.config = config
        self._keeper: sqlite3.Connection | None = None
        if config.driver == "memory":
            self.engine, self._keeper = _memory_engine(config, echo=echo)
        else:
            self.engine = create_engine(config, echo=echo)

    @property
    def driver(self) -> str:
        return self.config.driver

    def begin(self) -> AbstractContextManager[sa.Connection]:
        """A read-write transaction (on SQLite it holds the write lock from the start)."""
        return self.engine.begin()

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read-only transaction. On SQLite it takes no write lock, so WAL readers run
        beside the writer; a write inside it may fail with "database is locked"."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_deferred=True)
            with conn.begin():
                yield conn

    def connect(self) -> sa.Connection:
        return self.engine.connect()

    def close(self) -> None:
        """Close every pooled connection (and an in-memory database with them)."""
        self.engine.dispose()
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Bounded waits on a server that went silent (stopped, partitioned): without these a connect or
# a write blocks its thread until the kernel gives up on TCP (many minutes), and with it the
# flusher. libpq parameters, also for connections made outside the pool (the feed's LISTEN).
POSTGRES_CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


def create_engine(config: DatabaseConfig, *, echo: bool = False) -> Engine:
    """Build the Engine for a PostgreSQL or SQLite-file DatabaseConfig."""
    if config.driver == "postgres":
        return sa.create_engine(
            config.url,
            echo=echo,
            pool_size=config.pool_size,
            max_overflow=config.pool_size,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args=POSTGRES_CONNECT_ARGS,
        )
    if config.driver == "sqlite":
        engine = sa.create_engine(
            config.url,
            echo=echo,
            connect_args={"check_same_thread": False},
            pool_size=config.pool_size,
            max_overflow=0,
        )
        _configure_sqlite(engine, config.sqlite_busy_timeout_ms, wal=True)
        return engine
    raise ValueError("an in-memory database is built by Database(config)")


def _memory_engine(config: DatabaseConfig, *, echo: bool) -> tuple[Engine, sqlite3.Connection]:
    # A named shared-cache database lives as long as one connection to it is open: the keeper
    # holds it for the engine's lifetime. The pool hands out one connection at a time, which
    # makes the in-memory database single-writer exactly like SQLite on disk.
    uri = f"file:coscribe-{uuid.uuid4().hex}?mode=memory&cache=shared"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    keeper = connect()
    engine = sa.create_engine(
        "sqlite+pysqlite://",
        echo=echo,
        creator=connect,
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=config.sqlite_busy_timeout_ms / 1000,
    )
    _configure_sqlite(engine, config.sqlite_busy_timeout_ms, wal=False)
    return engine, keeper


def _configure_sqlite(engine: Engine, busy_timeout_ms: int, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Take transaction control away from the sqlite3 module (it would BEGIN lazily and
        # upgrade read locks to write locks mid-transaction, which fails instead of waiting).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # SQLite has one writer. Taking the write lock up front (IMMEDIATE) makes every
        # read-then-write transaction (claiming a job, allocating a seq) atomic, and a waiting
        # writer honours busy_timeout instead of failing with SQLITE_BUSY on lock upgrade.
        # Read-only work may opt out with execution_options(sqlite_deferred=True).
        mode = (
            "DEFERRED" if connection.get_execution_options().get("sqlite_deferred") else "IMMEDIATE"
        )
        connection.exec_driver_sql(f"BEGIN {mode}")
