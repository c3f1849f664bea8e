"""Alembic environment. Always run through persistence.migrate, which hands us a connection."""

from alembic import context

from persistence.migrate import include_object
from persistence.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `coscribe db migrate`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    compare_server_default=False,
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
