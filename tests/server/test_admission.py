"""Who may open which note over the websocket: every outcome of admission, on a real
database, and the close code each refusal is reported with."""

import asyncio

import pytest

from persistence import migrate, notes
from persistence.config import database_config_from_env
from persistence.engine import Database
from persistence.stores import workspaces
from server import closecodes
from server.admission import Admission, admission, admit, admit_live
from server.auth import Principal

ADMIN = Principal("admin", None, "t-admin")


@pytest.fixture
def db(tmp_path):
    with Database(database_config_from_env({"COSCRIBE_SQLITE_PATH": str(tmp_path / "a.db")})) as db:
        migrate.upgrade(db)
        yield db


@pytest.fixture
def world(db):
    """Two workspaces, a note in each, and a deleted note in the first."""
    with db.begin() as conn:
        mine = workspaces.create(conn, "mine", "Mine")["id"]
        other = workspaces.create(conn, "other", "Other")["id"]
        notes.create_note(conn, workspace_id=mine, note_id="here")
        notes.create_note(conn, workspace_id=other, note_id="there")
        notes.create_note(conn, workspace_id=mine, note_id="gone")
        notes.delete_note(conn, "gone")
    return db, Principal("editor", mine, "t-editor"), Principal("viewer", mine, "t-viewer")


def decide(db, note_id, principal, create=True):
    with db.read() as conn:
        return admit(conn, note_id, principal, create)


def test_each_outcome(world):
    db, editor, viewer = world
    assert decide(db, "here", editor) is Admission.OPEN
    assert decide(db, "here", viewer) is Admission.OPEN
    assert decide(db, "there", editor) is Admission.FORBIDDEN
    assert decide(db, "there", ADMIN) is Admission.OPEN
    assert decide(db, "gone", editor) is Admission.DELETED
    assert decide(db, "gone", ADMIN) is Admission.DELETED
    assert decide(db, "new", editor) is Admission.CREATE
    # A missing note: only an admin may learn that the id is free.
    assert decide(db, "new", viewer) is Admission.FORBIDDEN
    assert decide(db, "new", editor, create=False) is Admission.FORBIDDEN
    assert decide(db, "new", ADMIN, create=False) is Admission.MISSING


def test_refusals_map_to_close_codes_at_the_edge():
    assert Admission.OPEN.close_code is None
    assert Admission.FORBIDDEN.close_code == closecodes.FORBIDDEN
    assert Admission.MISSING.close_code == closecodes.NOTE_NOT_FOUND
    assert Admission.DELETED.close_code == closecodes.NOTE_NOT_FOUND
    # CREATE is never the final answer: admission() creates the note and says OPEN.
    refusals = {outcome for outcome in Admission if outcome.close_code is not None}
    assert refusals == {Admission.FORBIDDEN, Admission.MISSING, Admission.DELETED}


def test_admission_creates_a_missing_note_in_the_principals_workspace(world):
    db, editor, _ = world
    assert asyncio.run(admission(db, "fresh", editor, create=True)) is Admission.OPEN
    with db.read() as conn:
        assert notes.get_note(conn, "fresh")["workspace_id"] == editor.workspace_id
    # Opened again, it exists: no second creation.
    assert asyncio.run(admission(db, "fresh", editor, create=True)) is Admission.OPEN


def test_concurrent_creations_of_one_note_all_get_in(world):
    db, editor, _ = world

    async def race():
        return await asyncio.gather(*(admission(db, "raced", editor, True) for _ in range(8)))

    assert set(asyncio.run(race())) == {Admission.OPEN}
    with db.read() as conn:
        assert notes.get_note(conn, "raced")["workspace_id"] == editor.workspace_id


def test_admission_without_creation_leaves_storage_alone(world):
    db, editor, _ = world
    assert asyncio.run(admission(db, "absent", editor, create=False)) is Admission.FORBIDDEN
    assert asyncio.run(admission(db, "absent", ADMIN, create=False)) is Admission.MISSING
    with db.read() as conn:
        assert notes.find_note(conn, "absent", include_deleted=True) is None


def test_a_live_room_is_admitted_by_its_workspace_alone(world):
    _, editor, _ = world
    assert admit_live(editor.workspace_id, editor) is Admission.OPEN
    assert admit_live("elsewhere", editor) is Admission.FORBIDDEN
    assert admit_live("elsewhere", ADMIN) is Admission.OPEN
