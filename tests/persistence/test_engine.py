"""What each driver's engine really does: SQLite pragmas read back, the PostgreSQL pool."""

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import QueuePool

from persistence.config import database_config_from_env
from persistence.engine import Database


def pragmas(db: Database) -> dict[str, object]:
    with db.read() as conn:
        return {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
            for name in (
                "journal_mode",
                "synchronous",
                "temp_store",
                "foreign_keys",
                "busy_timeout",
            )
        }


def test_sqlite_pragmas_are_set_on_every_connection(tmp_path):
    config = database_config_from_env(
        {
            "COSCRIBE_SQLITE_PATH": str(tmp_path / "p.sqlite"),
            "COSCRIBE_SQLITE_BUSY_TIMEOUT_MS": "1234",
        }
    )
    with Database(config) as db:
        expected = {
            "journal_mode": "wal",
            "synchronous": 1,  # NORMAL
            "temp_store": 2,  # MEMORY
            "foreign_keys": 1,
            "busy_timeout": 1234,
        }
        assert pragmas(db) == expected
        # A second pooled connection gets the same settings.
        with db.begin() as writer:
            writer.exec_driver_sql("SELECT 1")
            assert pragmas(db) == expected, "a reader runs beside an open write transaction"


def test_memory_database_pragmas_and_lifetime(tmp_path):
    config = database_config_from_env({"COSCRIBE_DB_DRIVER": "memory"})
    db = Database(config)
    values = pragmas(db)
    assert values["journal_mode"] == "memory"
    assert (values["foreign_keys"], values["temp_store"], values["synchronous"]) == (1, 2, 1)
    with db.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE kept (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO kept VALUES (7)")
    db.engine.dispose()  # pooled connections go; the database must not
    with db.connect() as conn:
        assert conn.exec_driver_sql("SELECT x FROM kept").scalar_one() == 7
    db.close()
    # A second memory database is a different database.
    with Database(config) as other, other.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one() == 0


def test_sqlite_write_transactions_wait_for_each_other(tmp_path):
    """BEGIN IMMEDIATE: a second writer waits for the first instead of failing."""
    config = database_config_from_env({"COSCRIBE_SQLITE_PATH": str(tmp_path / "w.sqlite")})
    with Database(config) as db:
        with db.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE counter (n INTEGER)")
            conn.exec_driver_sql("INSERT INTO counter VALUES (0)")

        def bump() -> None:
            for _ in range(50):
                with db.begin() as conn:
                    n = conn.exec_driver_sql("SELECT n FROM counter").scalar_one()
                    conn.execute(sa.text("UPDATE counter SET n = :n"), {"n": n + 1})

        threads = [threading.Thread(target=bump) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        with db.connect() as conn:
            assert conn.exec_driver_sql("SELECT n FROM counter").scalar_one() == 200


@pytest.mark.postgres
def test_postgres_uses_psycopg3_with_a_pool(postgres_schemas):
    env = {"DATABASE_URL": postgres_schemas.new(), "COSCRIBE_DB_POOL_SIZE": "3"}
    with Database(database_config_from_env(env)) as db:
        assert db.engine.dialect.driver == "psycopg"
        assert isinstance(db.engine.pool, QueuePool)
        assert db.engine.pool.size() == 3
        with db.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
