"""Alembic migrations on both dialects: head matches schema.py, start refuses a stale schema."""

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from persistence import migrate
from persistence.errors import SchemaError
from persistence.schema import metadata


def drift(db) -> list:
    with db.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": migrate.include_object}
        )
        return compare_metadata(context, metadata)


@pytest.mark.parametrize("driver", ["sqlite", "postgres"])
def test_empty_database_migrates_to_head_without_drift(empty_database, driver):
    db = empty_database(driver)
    before = migrate.status(db)
    assert before.current is None and not before.up_to_date
    after = migrate.upgrade(db)
    assert after.up_to_date and after.current == migrate.head_revision()
    assert drift(db) == []
    with db.connect() as conn:
        names = set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
    # The FTS5 table (and its shadow tables) of SQLite's full-text index is not in MetaData.
    tables = {name for name in names if not migrate.is_dialect_table(name)}
    assert tables == set(metadata.tables)
    # Migrating again is a no-op.
    assert migrate.upgrade(db).current == after.current


@pytest.mark.parametrize("driver", ["sqlite", "postgres"])
def test_downgrade_to_base_and_back(empty_database, driver):
    db = empty_database(driver)
    migrate.upgrade(db)
    migrate.upgrade(db, "head")
    from alembic import command

    with db.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "base")
    with db.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) <= {"alembic_version"}
    assert migrate.upgrade(db).up_to_date
    assert drift(db) == []


def test_embedded_databases_migrate_on_prepare(empty_database):
    for driver in ("memory", "sqlite"):
        db = empty_database(driver)
        assert migrate.prepare(db).up_to_date


def test_postgres_prepare_refuses_unmigrated_schema(empty_database):
    db = empty_database("postgres")
    with pytest.raises(SchemaError, match=r"not migrated.*run `coscribe db migrate`"):
        migrate.prepare(db)
    with db.connect() as conn:
        assert sa.inspect(conn).get_table_names() == [], "refusing must not create anything"


def test_postgres_prepare_refuses_schema_from_a_newer_version(empty_database):
    db = empty_database("postgres")
    migrate.upgrade(db)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dcafe'"))
    with pytest.raises(SchemaError, match="newer version"):
        migrate.prepare(db)
    with pytest.raises(SchemaError, match="newer version"):
        migrate.ensure_current(db)


def test_pinned_revisions_match_the_migration_scripts():
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    assert scripts.get_current_head() == migrate.HEAD
    ordered = [script.revision for script in reversed(list(scripts.walk_revisions()))]
    assert tuple(ordered) == migrate.REVISIONS
