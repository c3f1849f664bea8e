"""Ends sessions that lost their right to exist: every few seconds, the tokens of live
websockets and the notes of live rooms are checked against the database.

Tokens are revoked, and workspaces and notes deleted, from any process (the CLI, another
server): the database is the only place all of them write, so it is where this looks.
A revoked, expired or deleted token closes its sockets with 4401; a note that was deleted
or purged closes its room with 4404.
"""

from __future__ import annotations

import asyncio
import logging

from persistence import notes, tokens
from persistence.engine import Database

from . import closecodes
from .registry import RoomRegistry

log = logging.getLogger("coscribe.sessions")


class SessionWatch:
    def __init__(self, db: Database, rooms: RoomRegistry, interval_s: float) -> None:
        self.db = db
        self.rooms = rooms
        self.interval_s = interval_s

    async def check(self) -> int:
        """One round (run every interval_s by the server); returns how many connections it
        closed."""
        rooms = list(self.rooms.rooms.values())
        if not rooms:
            return 0
        token_ids = {
            connection.principal.token_id
            for room in rooms
            for connection in room.connections
            if connection.principal.token_id is not None
        }
        note_ids = [room.note_id for room in rooms]
        active, existing = await asyncio.to_thread(self._lookup, token_ids, note_ids)
        closed = 0
        for room in rooms:
            # Tokens first: a deleted workspace takes its tokens and its notes, and its
            # editors should hear that their access ended (4401), not only the note (4404).
            for connection in list(room.connections):
                token_id = connection.principal.token_id
                # Only tokens that were looked up are judged: a connection that joined while
                # the lookup ran was admitted with a valid token and waits for the next round.
                if token_id in token_ids and token_id not in active:
                    log.info("%r: token %s no longer valid, closing", connection, token_id)
                    connection.abort(closecodes.UNAUTHORIZED, "token revoked or expired")
                    room.leave(connection)
                    closed += 1
            if room.note_id not in existing:
                log.info("note %s was deleted: closing its room", room.note_id)
                closed += self.rooms.close_note(room.note_id, closecodes.NOTE_NOT_FOUND)
        return closed

    def _lookup(self, token_ids: set[str], note_ids: list[str]) -> tuple[set[str], set[str]]:
        with self.db.read() as conn:
            return tokens.active_ids(conn, token_ids), notes.existing_ids(conn, note_ids)
