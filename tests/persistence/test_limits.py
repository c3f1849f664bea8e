"""Field lengths are declared once (persistence.limits); the migrations keep their literals.

These tests prove that a database migrated to head has exactly the declared lengths, column by
column, on both dialects, and that the stores' checks refuse one character more.
"""

import pytest
import sqlalchemy as sa

from persistence import limits, migrate
from persistence.errors import InvalidError
from persistence.schema import metadata
from persistence.stores import (
    agents,
    background_tasks,
    codebases,
    conversations,
    schedules,
    tasks,
    workspaces,
)
from persistence.stores.entity import Entity

# Every String column but ids and references, with the limit it is declared by.
DECLARED = {
    "workspaces.slug": limits.SLUG_CHARS,
    "workspaces.name": limits.NAME_CHARS,
    "notes.title": limits.TITLE_CHARS,
    "note_snapshots.kind": limits.STATUS_CHARS,
    "note_snapshots.label": limits.LABEL_CHARS,
    "agents.name": limits.NAME_CHARS,
    "agents.role": limits.KIND_CHARS,
    "agents.model": limits.NAME_CHARS,
    "agents.status": limits.STATUS_CHARS,
    "codebases.name": limits.NAME_CHARS,
    "codebases.repo_url": limits.PATH_CHARS,
    "codebases.default_branch": limits.NAME_CHARS,
    "codebases.path": limits.PATH_CHARS,
    "codebases.language": limits.KIND_CHARS,
    "conversations.title": limits.TITLE_CHARS,
    "conversations.status": limits.STATUS_CHARS,
    "conversation_messages.role": limits.STATUS_CHARS,
    "conversation_messages.author": limits.AUTHOR_CHARS,
    "tasks.title": limits.TITLE_CHARS,
    "tasks.status": limits.STATUS_CHARS,
    "background_tasks.kind": limits.KIND_CHARS,
    "background_tasks.status": limits.STATUS_CHARS,
    "background_tasks.locked_by": limits.WORKER_CHARS,
    "schedules.name": limits.NAME_CHARS,
    "schedules.cron": limits.CRON_CHARS,
    "schedules.timezone": limits.KIND_CHARS,
    "schedules.job_kind": limits.KIND_CHARS,
    "tokens.name": limits.NAME_CHARS,
    "tokens.role": limits.STATUS_CHARS,
    "tokens.secret_hash": limits.SECRET_HASH_CHARS,
    "note_events.kind": limits.STATUS_CHARS,
    "webhooks.url": limits.PATH_CHARS,
    "webhooks.secret": limits.WEBHOOK_SECRET_CHARS,
    "webhook_deliveries.status": limits.STATUS_CHARS,
}


def declared_length(column: sa.Column) -> int:
    name = f"{column.table.name}.{column.name}"
    if column.primary_key or column.foreign_keys or name not in DECLARED:
        return limits.ID_CHARS  # ids and references (schema_id columns without a foreign key)
    return DECLARED[name]


def string_columns():
    for table in metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, sa.String) and column.type.length is not None:
                yield column


def test_the_schema_uses_the_declared_limits():
    seen = set()
    for column in string_columns():
        assert column.type.length == declared_length(column), f"{column.table.name}.{column}"
        seen.add(f"{column.table.name}.{column.name}")
    assert set(DECLARED) <= seen, "a declared column is missing from the schema"


@pytest.mark.parametrize("driver", ["sqlite", "postgres"])
def test_a_migrated_database_has_the_declared_lengths(empty_database, driver):
    # The migrations spell their lengths out (they are history and never change); this is
    # what keeps them and persistence.limits in agreement.
    db = empty_database(driver)
    migrate.upgrade(db)
    with db.connect() as conn:
        inspector = sa.inspect(conn)
        stored = {
            f"{table}.{column['name']}": column["type"]
            for table in metadata.tables
            for column in inspector.get_columns(table)
        }
    for column in string_columns():
        name = f"{column.table.name}.{column.name}"
        assert isinstance(stored[name], sa.String), name
        assert stored[name].length == declared_length(column), name


ENTITIES = [
    getattr(module, name)
    for module in (agents, background_tasks, codebases, conversations, schedules, tasks, workspaces)
    for name in dir(module)
    if isinstance(getattr(module, name), Entity)
]


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda entity: entity.label)
def test_store_checks_refuse_one_character_more_than_the_column_holds(entity):
    checked = 0
    for field, check in entity.fields.items():
        column = entity.table.c.get(field)
        if column is None or not isinstance(column.type, sa.String) or column.foreign_keys:
            continue
        if column.type.length is None:
            continue
        with pytest.raises(InvalidError):
            check(field, "a" * (column.type.length + 1))
        checked += 1
    assert checked or entity.label in {"task dependency"}, entity.label
