"""Shared fixtures: a migrated Database on memory, SQLite and PostgreSQL.

PostgreSQL runs at COSCRIBE_TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test).
Each test session works in its own schema so concurrent runs never collide. Under CI=true a
missing server fails the run; elsewhere those tests skip and say how to enable them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings

from persistence import migrate
from persistence.config import DatabaseConfig, database_config_from_env
from persistence.engine import Database
from persistence.schema import metadata
from tests.ci import IN_CI, unavailable

POSTGRES_URL = os.environ.get(
    "COSCRIBE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
DRIVERS = ["memory", "sqlite", "postgres"]

# In CI every property and fuzz test runs the same examples each time (derandomize): a gate
# must pass or fail for the change under test. Exploring new examples is what runs elsewhere
# do, each with fresh random ones (and a blob to replay any failure).
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile("ci" if IN_CI else "explore")


def _postgres_unavailable() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The admin URL of the test PostgreSQL, or a skip (a failure under CI=true)."""
    problem = _postgres_unavailable()
    if problem is not None:
        unavailable(
            f"PostgreSQL is not reachable at {POSTGRES_URL}: {problem}",
            "Start PostgreSQL or set COSCRIBE_TEST_DATABASE_URL to enable these tests.",
        )
    return POSTGRES_URL


class PostgresSchemas:
    """Creates throw-away schemas in the test database and drops them at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def new(self) -> str:
        """A new empty schema; returns a DATABASE_URL whose search_path points at it."""
        name = f"coscribe_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        self.created.append(name)
        separator = "&" if "?" in self.admin_url else "?"
        return f"{self.admin_url}{separator}options=-csearch_path%3D{name}"

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(scope="session")
def postgres_schemas(postgres_url: str) -> Iterator[PostgresSchemas]:
    schemas = PostgresSchemas(postgres_url)
    yield schemas
    schemas.drop_all()


def database_config(driver: str, request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseConfig:
    """A DatabaseConfig for an empty database of the given driver."""
    if driver == "memory":
        return database_config_from_env({"COSCRIBE_DB_DRIVER": "memory"})
    if driver == "sqlite":
        return database_config_from_env({"COSCRIBE_SQLITE_PATH": str(tmp_path / "test.sqlite")})
    schemas: PostgresSchemas = request.getfixturevalue("postgres_schemas")
    return database_config_from_env({"DATABASE_URL": schemas.new()})


@pytest.fixture(scope="session")
def _postgres_db(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Database]:
    # Migrating PostgreSQL costs a few hundred ms: do it once per session and empty the
    # tables between tests instead.
    db = Database(database_config("postgres", request, tmp_path_factory.mktemp("pg")))
    migrate.upgrade(db)
    yield db
    db.close()


def _empty(db: Database) -> None:
    # DELETE is much cheaper than TRUNCATE on tables this small (TRUNCATE rewrites files).
    with db.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(params=DRIVERS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A Database migrated to head, empty, on each driver."""
    driver = request.param
    if driver == "postgres":
        request.node.add_marker(pytest.mark.postgres)
        database: Database = request.getfixturevalue("_postgres_db")
        _empty(database)
        yield database
        return
    database = Database(database_config(driver, request, tmp_path))
    migrate.upgrade(database)
    yield database
    database.close()


@pytest.fixture
def empty_database(request: pytest.FixtureRequest, tmp_path: Path):
    """A factory: empty_database(driver) -> an unmigrated Database, closed after the test."""
    opened: list[Database] = []

    def make(driver: str) -> Database:
        database = Database(database_config(driver, request, tmp_path))
        opened.append(database)
        return database

    yield make
    for database in opened:
        database.close()
