"""May a principal open a note over the websocket? The decision, apart from the close code
that reports it: the endpoint maps a refusal to its close code at the edge."""

from __future__ import annotations

import asyncio
import enum

import sqlalchemy as sa

from persistence import notes
from persistence.engine import Database
from persistence.errors import ConflictError
from persistence.stores import workspaces

from . import closecodes
from .auth import Principal


class Admission(enum.Enum):
    OPEN = "open"  # the note exists and the principal reaches its workspace
    CREATE = "create"  # the note is missing and this principal may create it
    FORBIDDEN = "forbidden"  # another workspace's note, or a missing one (to a non-admin)
    MISSING = "missing"  # no such note (said only to an admin: others may not learn ids)
    DELETED = "deleted"  # the note was deleted

    @property
    def close_code(self) -> int | None:
        """The websocket close code that reports this outcome (None: admitted)."""
        return CLOSE_CODES.get(self)


CLOSE_CODES = {
    Admission.FORBIDDEN: closecodes.FORBIDDEN,
    Admission.MISSING: closecodes.NOTE_NOT_FOUND,
    Admission.DELETED: closecodes.NOTE_NOT_FOUND,
}


def admit(conn: sa.Connection, note_id: str, principal: Principal, create: bool) -> Admission:
    note = notes.find_note(conn, note_id, include_deleted=True)
    if note is not None:
        if not principal.reaches(note["workspace_id"]):
            return Admission.FORBIDDEN
        return Admission.DELETED if note["deleted_at"] is not None else Admission.OPEN
    if create and principal.can_write:
        return Admission.CREATE
    # Only an admin may learn that an id is free.
    return Admission.MISSING if principal.is_admin else Admission.FORBIDDEN


def create_note(conn: sa.Connection, note_id: str, principal: Principal) -> Admission:
    """Create the note in the principal's workspace, unless someone just did."""
    decision = admit(conn, note_id, principal, create=True)
    if decision is not Admission.CREATE:
        return decision
    workspace_id = principal.workspace_id or workspaces.ensure_default(conn)["id"]
    notes.create_note(conn, workspace_id=workspace_id, note_id=note_id)
    return Admission.OPEN


def admit_live(workspace_id: str, principal: Principal) -> Admission:
    """For a note whose room is live: it exists and is not deleted (deleting closes the
    room), and a note never changes workspace, so no need to ask the database."""
    return Admission.OPEN if principal.reaches(workspace_id) else Admission.FORBIDDEN


async def admission(db: Database, note_id: str, principal: Principal, create: bool) -> Admission:
    """admit() in a read transaction; only a note to create takes a write transaction."""

    def read() -> Admission:
        with db.read() as conn:
            return admit(conn, note_id, principal, create)

    def write() -> Admission:
        with db.begin() as conn:
            return create_note(conn, note_id, principal)

    decision = await asyncio.to_thread(read)
    if decision is not Admission.CREATE:
        return decision
    try:
        return await asyncio.to_thread(write)
    except ConflictError:  # created by a concurrent open on another connection: admit that
        return await asyncio.to_thread(read)
