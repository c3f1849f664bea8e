import sqlalchemy as sa

from persistence.schema import workspaces


def test_db_fixture_gives_a_migrated_empty_database(db):
    with db.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(workspaces)).scalar_one() == 0
