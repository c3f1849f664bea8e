"""Alembic environment and versions (valid on SQLite and PostgreSQL)."""
