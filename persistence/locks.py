"""Advisory locks per note: duties that several server processes sharing one PostgreSQL may
start at once (compacting a note, taking its automatic version, storing what a dead instance
of a cluster held) take turns on the note's lock for that duty, held until the transaction
ends. SQLite needs none: every write transaction there is exclusive already."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa


def advisory_key(duty: str, note_id: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks, one per duty and note."""
    digest = hashlib.blake2b(f"coscribe:{duty}:{note_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_note(conn: sa.Connection, duty: str, note_id: str) -> None:
    """Wait for the note's lock for this duty, until the transaction ends (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(advisory_key(duty, note_id))))
