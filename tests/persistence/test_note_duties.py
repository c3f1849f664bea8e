"""Duties that several server processes sharing one database may start at once, done once:
the automatic version of a note, and storing what a dead instance of a cluster held."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pycrdt
import pytest

from crdt import document
from persistence import notes, update_log, versions
from persistence.schema import note_snapshots, note_updates
from tests.persistence.test_notes import add_workspace, body, count_rows


@pytest.fixture
def note_id(db) -> str:
    with db.begin() as conn:
        add_workspace(conn)
        note_id = notes.create_note(conn, workspace_id="ws", note_id="n1")["id"]
        update_log.append_update(conn, note_id, _edit(None, "stored "))
    return note_id


def _edit(doc: pycrdt.Doc | None, text: str) -> bytes:
    doc = doc or pycrdt.Doc()
    content = doc.get("content", type=pycrdt.Text)
    before = doc.get_state()
    content += text
    return doc.get_update(before)


def test_an_automatic_version_is_taken_once_per_half_interval(db, note_id):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with db.begin() as conn:
        first = versions.create_auto_version(conn, note_id, 60, now=start)
        again = versions.create_auto_version(conn, note_id, 60, now=start + timedelta(seconds=29))
        later = versions.create_auto_version(conn, note_id, 60, now=start + timedelta(seconds=31))
    assert first is not None and first["kind"] == "auto"
    assert again is None
    assert later is not None
    assert count_rows(db, note_snapshots, note_id) == 2


def test_what_storage_lacks_is_appended_and_only_once(db, note_id):
    doc = pycrdt.Doc()
    with db.begin() as conn:
        doc.apply_update(update_log.load_doc(conn, note_id).get_update())
    _edit(doc, "and held only in memory")
    deleted = doc.get("content", type=pycrdt.Text)
    del deleted[0:7]  # a deletion alone is missing too
    state = doc.get_update()
    with db.begin() as conn:
        seq = update_log.append_missing(conn, note_id, state)
    with db.begin() as conn:
        again = update_log.append_missing(conn, note_id, state)
    assert seq == 2 and again is None
    assert body(db, note_id) == "and held only in memory"
    assert count_rows(db, note_updates, note_id) == 2


def test_nothing_is_appended_when_storage_has_it_all(db, note_id):
    with db.begin() as conn:
        state = update_log.load_doc(conn, note_id).get_update()
        assert update_log.append_missing(conn, note_id, state) is None
    assert count_rows(db, note_updates, note_id) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_two_processes_storing_what_a_dead_one_held_append_it_once(db, note_id):
    doc = pycrdt.Doc()
    with db.begin() as conn:
        doc.apply_update(update_log.load_doc(conn, note_id).get_update())
    _edit(doc, "from the instance that died")
    state = doc.get_update()
    barrier = threading.Barrier(4)

    def store() -> int | None:
        barrier.wait()
        with db.begin() as conn:
            return update_log.append_missing(conn, note_id, state)

    with ThreadPoolExecutor(4) as pool:
        seqs = list(pool.map(lambda _: store(), range(4)))
    assert sorted(seqs, key=lambda s: s is None) == [2, None, None, None]
    assert body(db, note_id) == "stored from the instance that died"


@pytest.mark.postgres
@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_two_processes_taking_the_automatic_version_at_once_take_one(db, note_id):
    barrier = threading.Barrier(4)

    def version() -> bool:
        barrier.wait()
        with db.begin() as conn:
            return versions.create_auto_version(conn, note_id, 60) is not None

    with ThreadPoolExecutor(4) as pool:
        taken = list(pool.map(lambda _: version(), range(4)))
    assert taken.count(True) == 1
    assert document.body_text(_version_doc(db, note_id)) == "stored "


def _version_doc(db, note_id: str) -> pycrdt.Doc:
    with db.begin() as conn:
        (row,) = versions.list_versions(conn, note_id)
        return document.load(versions.get_version(conn, note_id, row["id"])["state"], [])
