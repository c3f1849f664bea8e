"""Durable storage for coscribe: the note update log, snapshots, and the platform's entities.

Synchronous SQLAlchemy Core over SQLite, PostgreSQL (psycopg 3) or an in-memory SQLite.
Callers own the transaction: every store function takes a Connection.
"""
