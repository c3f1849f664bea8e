"""persistence.retention on memory, SQLite and PostgreSQL: policy, overrides and pruning."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pycrdt
import pytest
import sqlalchemy as sa

from crdt import document
from persistence import compaction, notes, retention, update_log, versions
from persistence.errors import InvalidError
from persistence.retention import PruneReport, RetentionPolicy
from persistence.schema import background_tasks, metadata, note_snapshots, note_updates, tasks
from persistence.stores import background_tasks as jobs
from persistence.stores import tasks as task_store
from persistence.stores import workspaces
from tests.writer import Writer

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
POLICY = RetentionPolicy()  # 90 days of versions, 30 of deleted notes, 7 of finished jobs
_kinds = itertools.count()


def days(n: float) -> timedelta:
    return timedelta(days=n)


def add_workspace(conn: sa.Connection, workspace_id: str, overrides: object = None) -> str:
    settings = {} if overrides is None else {"retention": overrides}
    workspaces.create(conn, workspace_id, id=workspace_id, settings=settings)
    return workspace_id


def add_note(
    conn: sa.Connection, workspace_id: str, note_id: str, versions_at: list[datetime]
) -> Writer:
    """A note with one edit and one version at each of the given times."""
    writer = Writer()
    notes.create_note(conn, workspace_id=workspace_id, note_id=note_id, now=T0)
    for index, at in enumerate(versions_at):
        update_log.append_update(conn, note_id, writer.type(f"{note_id}-{index} "), now=at)
        versions.create_version(conn, note_id, now=at)
    return writer


def finished_job(
    conn: sa.Connection, status: str, at: datetime, workspace_id: str | None = None
) -> str:
    kind = f"k{next(_kinds)}"
    job = jobs.enqueue(conn, kind, {"n": 1}, workspace_id=workspace_id, now=at)
    if status == "cancelled":
        jobs.cancel(conn, job["id"], reason="no", now=at)
        return job["id"]
    jobs.claim(conn, "w", kinds=[kind], now=at)
    if status == "succeeded":
        jobs.complete(conn, job["id"], "w", {"ok": True}, now=at)
    elif status == "failed":
        jobs.fail(conn, job["id"], "w", "boom", retry=False, now=at)
    return job["id"]


def version_ids(conn: sa.Connection, note_id: str) -> list[int]:
    return sorted(version["id"] for version in versions.list_versions(conn, note_id))


def dump(db) -> dict[str, list[tuple]]:
    """Every row of every table, for "nothing changed" checks."""
    with db.begin() as conn:
        return {
            table.name: sorted(
                (tuple(map(repr, row)) for row in conn.execute(sa.select(table))), key=repr
            )
            for table in metadata.sorted_tables
        }


def run(db, policy: RetentionPolicy = POLICY, **kwargs) -> PruneReport:
    with db.begin() as conn:
        return retention.prune(conn, policy, **kwargs)


# --- the policy ----------------------------------------------------------------------------------


def test_policy_defaults():
    # The server's settings hand these in (server/settings.py; tests/server/test_settings.py).
    policy = RetentionPolicy()
    assert policy.version_retention_s == 90 * 86_400
    assert policy.deleted_note_retention_s == 30 * 86_400
    assert policy.job_retention_s == 7 * 86_400


@pytest.mark.parametrize("bad", [-1, 1.5, "60", True, None, retention.MAX_RETENTION_S + 1])
def test_policy_refuses_bad_values_in_code(bad):
    with pytest.raises(ValueError, match="job_retention_s"):
        RetentionPolicy(job_retention_s=bad)


def test_workspace_overrides_resolve():
    policy = RetentionPolicy(100, 200, 300)
    assert policy.for_workspace({}) == policy
    assert policy.for_workspace({"theme": "dark"}) == policy
    assert policy.for_workspace({"retention": None}) == policy
    assert policy.for_workspace({"retention": {}}) == policy
    overridden = {
        "retention": {"version_seconds": 0, "job_seconds": 5, "deleted_note_seconds": None}
    }
    assert policy.for_workspace(overridden) == RetentionPolicy(0, 200, 5)
    assert retention.override_problems(overridden) == []


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"retention": 30}, "retention: expected an object"),
        ({"retention": [1]}, "retention: expected an object"),
        ({"retention": {"versions_seconds": 5}}, "unknown key 'versions_seconds'"),
        ({"retention": {"version_seconds": "30d"}}, "retention.version_seconds: expected"),
        ({"retention": {"job_seconds": -5}}, "retention.job_seconds: must be 0"),
        ({"retention": {"job_seconds": True}}, "retention.job_seconds: expected"),
        ({"retention": {"deleted_note_seconds": 2.5}}, "retention.deleted_note_seconds"),
    ],
)
def test_invalid_overrides_are_described(settings, words):
    problems = retention.override_problems(settings)
    assert len(problems) == 1 and words in problems[0]
    with pytest.raises(InvalidError, match="invalid workspace settings"):
        POLICY.for_workspace(settings)


# --- versions ----------------------------------------------------------------------------------


def test_expired_versions_go_and_the_newest_stays(db):
    with db.begin() as conn:
        add_workspace(conn, "ws")
        add_note(conn, "ws", "n1", [T0, T0 + days(10), T0 + days(100)])
        add_note(conn, "ws", "n2", [T0 + days(50)])
        [v1, v2, v3] = version_ids(conn, "n1")
        sizes = {v["id"]: v["size"] for v in versions.list_versions(conn, "n1")}
        vectors = conn.execute(
            sa.select(note_snapshots.c.id, sa.func.length(note_snapshots.c.state_vector))
        ).all()
    vector_bytes = dict(vectors)
    # At T0 + 100 days: versions before T0 + 10 days are expired.
    report = run(db, now=T0 + days(100))
    assert report.versions == (("n1", v1),) and report.version_ids == [v1]
    assert report.version_bytes == sizes[v1] + vector_bytes[v1]
    assert (report.note_ids, report.job_ids, report.problems) == ((), (), ())
    assert not report.dry_run and not report.truncated and report.removed == 1
    # Exactly 90 days old is not older than 90 days.
    assert run(db, now=T0 + days(100)).removed == 0
    report = run(db, now=T0 + days(100) + timedelta(microseconds=1))
    assert report.version_ids == [v2]
    # Years later, each note keeps its newest version however old it is.
    assert run(db, now=T0 + days(3650)).version_ids == []
    with db.begin() as conn:
        assert version_ids(conn, "n1") == [v3]
        assert len(version_ids(conn, "n2")) == 1


def test_every_snapshot_kind_expires(db):
    writer = Writer()
    with db.begin() as conn:
        add_workspace(conn, "ws")
        notes.create_note(conn, workspace_id="ws", note_id="n", now=T0)
        update_log.append_update(conn, "n", writer.type("a"), now=T0)
        compaction.compact_note_in(conn, "n", now=T0)
        update_log.append_update(conn, "n", writer.type("b"), now=T0)
        versions.create_version(conn, "n", kind="auto", label="auto", now=T0)
        update_log.append_update(conn, "n", writer.type("c"), now=T0)
        versions.create_version(conn, "n", kind="restore", now=T0)
        update_log.append_update(conn, "n", writer.type("d"), now=T0)
        versions.create_version(conn, "n", label="kept: newest", now=T0)
        ids = version_ids(conn, "n")
    assert run(db, now=T0 + days(1000)).version_ids == ids[:3]
    with db.begin() as conn:
        assert version_ids(conn, "n") == ids[3:]
        assert document.body_text(update_log.load_doc(conn, "n")) == "abcd"


def insert_snapshot(conn, snapshot_id: int, through_seq: int, state: bytes, vector: bytes) -> None:
    conn.execute(
        sa.insert(note_snapshots).values(
            id=snapshot_id,
            note_id="n",
            through_seq=through_seq,
            state=state,
            state_vector=vector,
            kind="manual",
            created_at=T0,
        )
    )


def test_the_load_base_stays_highest_through_seq_then_highest_id(db):
    # Ids and through_seqs in an order the server would not produce: the base is still the
    # snapshot load reads, not the one with the highest id or the latest time.
    writer = Writer()
    updates = [writer.type(c) for c in "abc"]
    states = {n: document.merge(None, updates[:n]) for n in (1, 2, 3)}
    with db.begin() as conn:
        add_workspace(conn, "ws")
        notes.create_note(conn, workspace_id="ws", note_id="n", now=T0)
        update_log.append_updates(conn, "n", updates, now=T0)
        insert_snapshot(conn, 10, 3, *states[3])  # the base: highest through_seq...
        insert_snapshot(conn, 11, 3, *states[3])  # ...and on a tie the highest id: this one
        insert_snapshot(conn, 20, 1, *states[1])  # highest id, lowest through_seq
        insert_snapshot(conn, 12, 2, *states[2])
        before = update_log.load_note(conn, "n")
    assert before.through_seq == 3 and before.updates == []
    assert run(db, now=T0 + days(365)).version_ids == [10, 12, 20]
    with db.begin() as conn:
        assert version_ids(conn, "n") == [11]
        assert update_log.load_note(conn, "n") == before
        assert document.body_text(update_log.load_doc(conn, "n")) == "abc"


def random_history(db, note_id: str, seed: int) -> None:
    """Edits by two peers over a year: versions, compactions and a tail of plain updates."""
    rng = random.Random(seed)
    peers = [Writer(client_id=11), Writer(client_id=12)]
    at = T0
    for step in range(60):
        at += timedelta(days=rng.randint(1, 10))
        peer = rng.choice(peers)
        if peer.text and rng.random() < 0.3:
            start = rng.randrange(len(str(peer.text)))
            update = peer.delete(start, min(len(str(peer.text)), start + rng.randint(1, 3)))
        else:
            update = peer.type(rng.choice("abcdefgh") * rng.randint(1, 4))
        for other in peers:
            if other is not peer:
                document.apply_update(other.doc, update)
                other.captured.clear()
        with db.begin() as conn:
            update_log.append_update(conn, note_id, update, now=at)
            roll = rng.random()
            if roll < 0.25:
                versions.create_version(conn, note_id, label=f"step {step}", now=at)
            elif roll < 0.35:
                compaction.compact_note_in(conn, note_id, now=at)
            elif roll < 0.4:
                compaction.compact_note_in(conn, note_id, max_seq=rng.randint(1, step + 1), now=at)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_note_loads_identically_after_its_old_versions_go(db, seed):
    with db.begin() as conn:
        add_workspace(conn, "ws")
        notes.create_note(conn, workspace_id="ws", note_id="n", now=T0)
    random_history(db, "n", seed)
    with db.begin() as conn:
        stored = update_log.load_note(conn, "n")
        doc = update_log.load_doc(conn, "n")
        count = len(versions.list_versions(conn, "n"))
    assert count > 3
    report = run(db, RetentionPolicy(version_retention_s=1), now=T0 + days(10_000))
    assert len(report.versions) == count - 1
    with db.begin() as conn:
        assert len(versions.list_versions(conn, "n")) == 1
        assert update_log.load_note(conn, "n") == stored
        after = update_log.load_doc(conn, "n")
    assert document.render(after) == document.render(doc)
    assert document.body_text(after) == document.body_text(doc)
    assert document.decode_state_vector(document.state_vector(after)) == (
        document.decode_state_vector(document.state_vector(doc))
    )
    # What a peer would still need from the pruned note: nothing the original did not have.
    fresh = pycrdt.Doc()
    document.apply_update(fresh, document.diff(after, b"\x00"))
    assert document.body_text(fresh) == document.body_text(doc)


# --- deleted notes -----------------------------------------------------------------------------


def test_notes_deleted_longer_ago_than_the_period_are_purged(db):
    with db.begin() as conn:
        add_workspace(conn, "ws")
        add_note(conn, "ws", "gone", [T0, T0 + DAY])
        add_note(conn, "ws", "recent", [T0])
        add_note(conn, "ws", "alive", [T0])
        update_log.append_update(conn, "gone", Writer(client_id=3).type("tail"), now=T0 + DAY)
        task = task_store.create(conn, "ws", "about gone", note_id="gone")
        notes.delete_note(conn, "gone", now=T0 + DAY)
        notes.delete_note(conn, "recent", now=T0 + days(20))
        size = (
            conn.execute(
                sa.select(
                    sa.func.sum(sa.func.length(note_snapshots.c.state))
                    + sa.func.sum(sa.func.length(note_snapshots.c.state_vector))
                ).where(note_snapshots.c.note_id == "gone")
            ).scalar_one()
            + conn.execute(
                sa.select(sa.func.sum(sa.func.length(note_updates.c.update))).where(
                    note_updates.c.note_id == "gone"
                )
            ).scalar_one()
        )
    assert run(db, now=T0 + days(31)).note_ids == ()  # exactly 30 days: kept
    # One of its versions has expired too, but it went with the note: counted once, as the note.
    report = run(db, RetentionPolicy(version_retention_s=86_400), now=T0 + days(45))
    assert report.note_ids == ("gone",) and report.note_bytes == size
    assert report.versions == ()
    with db.begin() as conn:
        assert notes.find_note(conn, "gone", include_deleted=True) is None
        for table in (note_updates, note_snapshots):
            count = sa.select(sa.func.count()).where(table.c.note_id == "gone")
            assert conn.execute(count).scalar_one() == 0
        assert conn.execute(sa.select(tasks.c.note_id).where(tasks.c.id == task["id"])).one() == (
            None,
        )
        assert notes.find_note(conn, "recent", include_deleted=True) is not None
        assert notes.find_note(conn, "alive") is not None
    assert run(db, now=T0 + days(51)).note_ids == ("recent",)


# --- jobs --------------------------------------------------------------------------------------


def test_finished_jobs_older_than_the_period_go(db):
    with db.begin() as conn:
        add_workspace(conn, "ws")
        old = [
            finished_job(conn, status, T0, workspace)
            for status in ("succeeded", "failed", "cancelled")
            for workspace in ("ws", None)
        ]
        recent = finished_job(conn, "succeeded", T0 + days(5), "ws")
        queued = jobs.enqueue(conn, "waiting", workspace_id="ws", now=T0)["id"]
        running = jobs.enqueue(conn, "busy", now=T0)["id"]
        jobs.claim(conn, "w", kinds=["busy"], now=T0)
        sizes = conn.execute(
            sa.select(
                background_tasks.c.id,
                sa.func.length(sa.cast(background_tasks.c.payload, sa.Text))
                + sa.func.coalesce(sa.func.length(sa.cast(background_tasks.c.result, sa.Text)), 0)
                + sa.func.coalesce(sa.func.length(background_tasks.c.error), 0),
            )
        ).all()
    assert run(db, now=T0 + days(7)).job_ids == ()
    report = run(db, now=T0 + days(8))
    assert sorted(report.job_ids) == sorted(old)
    assert report.job_bytes == sum(size for job_id, size in sizes if job_id in old) > 0
    with db.begin() as conn:
        left = {job["id"] for job in jobs.list_jobs(conn, limit=100).items}
    assert left == {recent, queued, running}
    assert run(db, now=T0 + days(5 + 8)).job_ids == (recent,)


# --- overrides ---------------------------------------------------------------------------------


def test_workspace_overrides_apply_per_category(db):
    with db.begin() as conn:
        add_workspace(conn, "plain")
        add_workspace(
            conn, "forever", {"version_seconds": 0, "deleted_note_seconds": 0, "job_seconds": 0}
        )
        add_workspace(
            conn,
            "short",
            {"version_seconds": 86_400, "deleted_note_seconds": 86_400, "job_seconds": 3_600},
        )
        for workspace in ("plain", "forever", "short"):
            add_note(conn, workspace, f"{workspace}-n", [T0, T0 + DAY, T0 + days(2)])
            add_note(conn, workspace, f"{workspace}-deleted", [T0])
            notes.delete_note(conn, f"{workspace}-deleted", now=T0)
        jobs_of = {w: finished_job(conn, "succeeded", T0, w) for w in ("plain", "forever", "short")}
        orphan = finished_job(conn, "succeeded", T0)
        first = {w: version_ids(conn, f"{w}-n")[0] for w in ("plain", "forever", "short")}

    report = run(db, now=T0 + days(3))
    assert report.version_ids == [first["short"], first["short"] + 1]
    assert report.note_ids == ("short-deleted",)
    assert report.job_ids == (jobs_of["short"],)
    assert report.problems == ()

    report = run(db, now=T0 + days(1000))
    assert [note_id for note_id, _ in report.versions] == ["plain-n", "plain-n"]
    assert report.note_ids == ("plain-deleted",)
    assert sorted(report.job_ids) == sorted([jobs_of["plain"], orphan])
    with db.begin() as conn:
        assert len(version_ids(conn, "forever-n")) == 3
        assert notes.find_note(conn, "forever-deleted", include_deleted=True) is not None
        assert jobs.get(conn, jobs_of["forever"])["status"] == "succeeded"


def test_jobs_of_no_workspace_follow_the_server_default(db):
    with db.begin() as conn:
        add_workspace(conn, "ws", {"job_seconds": 0})
        kept = finished_job(conn, "failed", T0, "ws")
        orphan = finished_job(conn, "failed", T0)
    assert run(db, RetentionPolicy(job_retention_s=0), now=T0 + days(100)).job_ids == ()
    assert run(db, RetentionPolicy(job_retention_s=60), now=T0 + days(100)).job_ids == (orphan,)
    with db.begin() as conn:
        assert jobs.get(conn, kept)["status"] == "failed"


def test_invalid_overrides_leave_their_workspace_alone_and_are_reported(db):
    with db.begin() as conn:
        add_workspace(conn, "bad-value", {"version_seconds": "30d", "job_seconds": 60})
        add_workspace(conn, "typo", {"versions_seconds": 60})
        add_workspace(conn, "not-an-object", "90 days")
        add_workspace(conn, "fine")
        for workspace in ("bad-value", "typo", "not-an-object", "fine"):
            add_note(conn, workspace, f"{workspace}-n", [T0, T0 + DAY])
            add_note(conn, workspace, f"{workspace}-deleted", [T0])
            notes.delete_note(conn, f"{workspace}-deleted", now=T0)
            finished_job(conn, "succeeded", T0, workspace)
    report = run(db, now=T0 + days(1000))
    assert len(report.problems) == 3
    bad_value, not_an_object, typo = report.problems
    assert bad_value.startswith("workspace 'bad-value': retention.version_seconds: expected")
    assert "versions are kept until it is fixed" in bad_value
    assert not_an_object.startswith("workspace 'not-an-object': retention: expected an object")
    assert typo.startswith("workspace 'typo': retention: unknown key 'versions_seconds'")
    # The bad value only stops versions there; everything else in that workspace is pruned.
    assert {note_id for note_id, _ in report.versions} == {"fine-n"}
    assert sorted(report.note_ids) == ["bad-value-deleted", "fine-deleted"]
    assert len(report.job_ids) == 2
    with db.begin() as conn:
        assert len(version_ids(conn, "bad-value-n")) == 2
        assert len(version_ids(conn, "typo-n")) == 2


# --- dry run, limits, arguments ------------------------------------------------------------------


def populate(db) -> None:
    with db.begin() as conn:
        add_workspace(conn, "a")
        add_workspace(conn, "b", {"version_seconds": 86_400})
        for workspace in ("a", "b"):
            for n in range(3):
                add_note(conn, workspace, f"{workspace}{n}", [T0, T0 + DAY, T0 + days(2)])
                finished_job(conn, "succeeded", T0, workspace)
            notes.delete_note(conn, f"{workspace}2", now=T0)


def test_dry_run_changes_nothing_and_reports_what_a_real_run_removes(db):
    populate(db)
    before = dump(db)
    with db.begin() as conn:
        dry = retention.prune(conn, POLICY, now=T0 + days(365), dry_run=True)
    assert dump(db) == before
    # Versions: two expired in each live note (8); notes: a2 and b2; jobs: all six.
    assert dry.dry_run and dry.removed == 8 + 2 + 6
    real = run(db, now=T0 + days(365))
    assert dry == PruneReport(**{**real.__dict__, "dry_run": True})
    assert dump(db) != before


def test_a_dry_run_in_a_read_transaction(db):
    populate(db)
    with db.read() as conn:
        report = retention.prune(conn, POLICY, now=T0 + days(365), dry_run=True)
    assert report.removed == 16


def test_defaults_of_zero_keep_everything_a_workspace_does_not_override(db):
    populate(db)
    report = run(db, RetentionPolicy(0, 0, 0), now=T0 + days(100_000))
    # Only workspace b's own version period applies.
    assert {note_id for note_id, _ in report.versions} == {"b0", "b1", "b2"}
    assert (report.note_ids, report.job_ids) == ((), ())
    before = dump(db)
    assert run(db, RetentionPolicy(0, 0, 0), now=T0 + days(100_000)).removed == 0
    assert dump(db) == before


def test_limits_and_batches(db, monkeypatch):
    populate(db)
    monkeypatch.setattr(retention, "CHUNK", 1)  # every IN list of one id: many statements
    monkeypatch.setattr(retention, "SCAN_ROWS", 3)  # several passes of prune_batched
    expected = run(db, now=T0 + days(365), dry_run=True)
    first = run(db, now=T0 + days(365), limit=2)
    assert first.truncated
    assert (len(first.versions), len(first.note_ids), len(first.job_ids)) == (2, 2, 2)
    rest = retention.prune_batched(db, POLICY, now=T0 + days(365), batch_size=2)
    assert not rest.truncated
    merged = first.merge(rest)
    assert sorted(merged.versions) == sorted(expected.versions)
    assert sorted(merged.note_ids) == sorted(expected.note_ids)
    assert sorted(merged.job_ids) == sorted(expected.job_ids)
    assert merged.version_bytes + merged.note_bytes + merged.job_bytes == (
        expected.version_bytes + expected.note_bytes + expected.job_bytes
    )
    assert run(db, now=T0 + days(365)).removed == 0


def test_batched_prune_removes_what_a_single_prune_does(db):
    populate(db)
    expected = run(db, now=T0 + days(365), dry_run=True)
    report = retention.prune_batched(db, POLICY, now=T0 + days(365))
    assert report == PruneReport(**{**expected.__dict__, "dry_run": False})
    assert run(db, now=T0 + days(365)).removed == 0


def test_a_row_that_stops_qualifying_before_its_delete_stays(db, monkeypatch):
    populate(db)
    delete = retention._delete

    def undelete_first(conn, group, rows):
        # Someone restores a note between the find and the delete (another transaction).
        if notes.find_note(conn, "a2", include_deleted=True)["deleted_at"] is not None:
            notes.undelete_note(conn, "a2")
        return delete(conn, group, rows)

    monkeypatch.setattr(retention, "_delete", undelete_first)
    report = retention.prune_batched(db, POLICY, now=T0 + days(365))
    assert report.note_ids == ("b2",)
    with db.begin() as conn:
        assert notes.find_note(conn, "a2") is not None
        assert len(version_ids(conn, "a2")) == 3  # left for the next run, which finds them
    assert len(run(db, now=T0 + days(365)).versions) == 2


def test_report_as_dict():
    report = PruneReport(
        now=T0,
        dry_run=True,
        versions=(("n", 1), ("n", 2), ("m", 3)),
        version_bytes=30,
        note_ids=("x",),
        note_bytes=5,
        job_ids=("j1", "j2"),
        job_bytes=7,
        problems=("workspace 'w': retention: ...",),
    )
    summary = report.as_dict(max_ids=2)
    assert summary["versions"] == {"count": 3, "bytes": 30, "ids": [1, 2]}
    assert summary["deleted_notes"] == {"count": 1, "bytes": 5, "ids": ["x"]}
    assert summary["jobs"] == {"count": 2, "bytes": 7, "ids": ["j1", "j2"]}
    assert summary["now"] == "2024-01-01T00:00:00+00:00" and summary["dry_run"] is True
    assert summary["problems"] == ["workspace 'w': retention: ..."]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"now": datetime(2025, 1, 1)},
        {"now": "2025-01-01"},
        {"limit": 0},
        {"limit": True},
        {"limit": 1.5},
    ],
)
def test_bad_arguments(db, kwargs):
    with db.begin() as conn, pytest.raises(InvalidError):
        retention.prune(conn, POLICY, **kwargs)


def test_bad_policy_and_batch_size(db):
    with db.begin() as conn, pytest.raises(InvalidError, match="policy"):
        retention.prune(conn, {"version_retention_s": 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="batch_size"):
        retention.prune_batched(db, POLICY, batch_size=0)


def test_a_now_near_year_one_expires_nothing(db):
    populate(db)
    assert run(db, now=datetime(1, 1, 2, tzinfo=UTC)).removed == 0
