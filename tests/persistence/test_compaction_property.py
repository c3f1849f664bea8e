"""Property: the document rebuilt from storage is identical before and after compaction.

Random edit histories: several peers (32-bit and 53-bit client ids) insert into and delete
from the body Y.Text and set and delete keys of a Y.Map, and exchange updates in random
orders and random subsets. The server log stores every update a peer made, in the order
they were made (what a room stores is causal), in group-commit batches. Compactions with a
random max_seq, and versions, happen at random points. After each: the stored document
renders the same and has the same state vector as before, and as a reference doc that
applied every stored update.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pycrdt
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crdt import document
from persistence import compaction, notes, update_log, versions
from persistence.engine import Database
from persistence.schema import workspaces
from tests.writer import Peer

KEYS = ["a", "b", "c"]
_note_ids = itertools.count()


class HistoryPeer(Peer):
    """A Peer that also remembers which updates of the shared history it has applied."""

    def __init__(self, client_id: int) -> None:
        super().__init__(client_id)
        self.seen: set[int] = set()  # indexes into the history this peer has applied


def snapshot_of(db: Database, note_id: str) -> tuple[dict, dict[int, int]]:
    with db.begin() as conn:
        doc = update_log.load_doc(conn, note_id)
    return document.render(doc), document.decode_state_vector(document.state_vector(doc))


def reference_of(updates: list[bytes]) -> tuple[dict, dict[int, int]]:
    doc = document.load(None, updates)
    return document.render(doc), document.decode_state_vector(document.state_vector(doc))


def ensure_workspace(db: Database) -> None:
    with db.begin() as conn:
        if conn.execute(sa.select(workspaces.c.id).where(workspaces.c.id == "ws")).first():
            return
        now = datetime.now(UTC)
        conn.execute(
            sa.insert(workspaces).values(
                id="ws", slug="ws", name="ws", settings={}, created_at=now, updated_at=now
            )
        )


client_ids = st.lists(
    st.integers(1, 2**32 - 1) | st.integers(2**32, 2**53 - 1), min_size=2, max_size=3, unique=True
)
# Weighted by repetition: mostly edits, with enough storing and compacting in between.
ACTIONS = ["insert"] * 4 + ["delete"] * 2 + ["set", "unset"] + ["deliver"] * 2 + ["store"] * 3
ACTIONS += ["compact"] * 2 + ["version"]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), ids=client_ids)
def test_storage_is_identical_before_and_after_compaction(db, data, ids):
    ensure_workspace(db)
    note_id = f"prop{next(_note_ids)}"
    with db.begin() as conn:
        notes.create_note(conn, workspace_id="ws", note_id=note_id)
    peers = [HistoryPeer(client_id) for client_id in ids]
    history: list[bytes] = []  # every update any peer made, in the order they were made
    stored: list[bytes] = []  # the prefix of history that is in the database
    last_seq = 0

    def collect() -> None:
        for peer in peers:
            for update in peer.made:
                peer.seen.add(len(history))
                history.append(update)
            peer.made.clear()

    def store(count: int) -> None:
        nonlocal last_seq
        batch = history[len(stored) : len(stored) + count]
        if batch:
            with db.begin() as conn:
                seqs = update_log.append_updates(conn, note_id, batch)
            assert seqs == list(range(last_seq + 1, last_seq + len(batch) + 1))
            last_seq = seqs[-1]
            stored.extend(batch)

    for _ in range(data.draw(st.integers(20, 80), label="steps")):
        action = data.draw(st.sampled_from(ACTIONS), label="action")
        peer = data.draw(st.sampled_from(peers), label="peer")
        length = len(str(peer.text))
        if action == "insert":
            at = peer.byte_offset(data.draw(st.integers(0, length), label="at"))
            chunk = data.draw(st.text(alphabet="ab é😀\n", min_size=1, max_size=4), label="chunk")
            with peer.edit():
                peer.text.insert(at, chunk)
        elif action == "delete" and length:
            start = data.draw(st.integers(0, length - 1), label="start")
            end = data.draw(st.integers(start + 1, min(length, start + 4)), label="end")
            first, last = peer.byte_offset(start), peer.byte_offset(end)
            with peer.edit():
                del peer.text[first:last]
        elif action == "set":
            key = data.draw(st.sampled_from(KEYS), label="key")
            value = data.draw(st.integers(-9, 9) | st.text(max_size=3), label="value")
            with peer.edit():
                peer.meta[key] = value
        elif action == "unset":
            key = data.draw(st.sampled_from(KEYS), label="key")
            if key in peer.meta:
                with peer.edit():
                    del peer.meta[key]
        collect()
        if action == "deliver":
            missing = [index for index in range(len(history)) if index not in peer.seen]
            chosen = data.draw(st.permutations(missing), label="order")
            chosen = chosen[: data.draw(st.integers(0, len(chosen)), label="how many")]
            for index in chosen:  # out of order and with gaps: pending structs included
                peer.doc.apply_update(history[index])
                peer.seen.add(index)
            collect()
        elif action == "store":
            store(data.draw(st.integers(1, 8), label="batch"))
        elif action == "compact":
            max_seq = data.draw(st.none() | st.integers(0, last_seq + 2), label="max_seq")
            before = snapshot_of(db, note_id)
            result = compaction.compact_note(db, note_id, max_seq=max_seq)
            assert result.through_seq <= last_seq
            after = snapshot_of(db, note_id)
            assert after == before == reference_of(stored)
        elif action == "version":
            with db.begin() as conn:
                version = versions.create_version(conn, note_id)
            assert version["through_seq"] == last_seq
            with db.begin() as conn:
                state = versions.get_version(conn, note_id, version["id"])["state"]
            version_doc = document.load(state, [])
            assert document.render(version_doc) == reference_of(stored)[0]

    # Store the rest, compact everything: storage equals a doc that saw every update.
    collect()
    store(len(history))
    compaction.compact_note(db, note_id)
    with db.begin() as conn:
        assert update_log.load_note(conn, note_id).updates == []
    final = snapshot_of(db, note_id)
    assert final == reference_of(history)
    everything = pycrdt.Doc()
    for peer in peers:
        everything.apply_update(peer.doc.get_update())
    assert final[0] == document.render(document.load(document.encode_state(everything), []))
