"""Retention: drop old versions, purge notes deleted long ago, drop old finished jobs.

Three periods, each in seconds, 0 meaning "keep forever":

* versions: a snapshot older than this goes, unless it is its note's newest (see below);
* deleted notes: a note soft-deleted longer ago than this is deleted for good, with its
  update log and snapshots (the schema cascades; ``tasks.note_id`` becomes NULL);
* jobs: a succeeded, failed or cancelled background task finished longer ago than this goes.

Server-wide defaults are the server's settings (``COSCRIBE_VERSION_RETENTION_S`` and its two
siblings, checked when it starts) handed in as a ``RetentionPolicy``. A workspace may override
any of them in its settings::

    {"retention": {"version_seconds": 0, "deleted_note_seconds": 604800, "job_seconds": 86400}}

A missing key or ``null`` uses the server default. An override that is not valid is never
guessed at: the categories it concerns are left alone in that workspace (nothing is removed
there) and the problem is listed in ``PruneReport.problems``, while everything else is pruned
as usual. An unknown key under "retention" (a typo, say) could have been meant for any
category, so it leaves the whole workspace alone; so does a "retention" that is not an object.

The snapshot that load starts from (a note's newest: highest ``through_seq``, then highest id,
see persistence.notes) is never removed, however old. Removing any other snapshot loses
nothing: a snapshot with ``through_seq = S`` holds every update up to S, so the newest one
holds everything an older one does, and load never reads an older one again.

``prune`` takes the caller's connection and never commits. It finds what is due with one
SELECT per category and group of workspaces sharing a period, then deletes it by id in chunks
(each DELETE repeating the conditions, so a row that stopped qualifying meanwhile stays):
set-based, never one statement per row. ``prune_batched`` finds in a read transaction and
deletes in short transactions of its own, for a server that keeps writing meanwhile (SQLite
has one writer).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from .checks import as_now
from .engine import Database
from .errors import InvalidError
from .schema import background_tasks, note_snapshots, note_updates, notes, workspaces
from .stores.background_tasks import FINISHED

DAY_S = 86_400
DEFAULT_VERSION_RETENTION_S = 90 * DAY_S
DEFAULT_DELETED_NOTE_RETENTION_S = 30 * DAY_S
DEFAULT_JOB_RETENTION_S = 7 * DAY_S
# Far beyond any sensible period, and small enough that `now - period` never underflows.
MAX_RETENTION_S = 100 * 366 * DAY_S

SETTINGS_KEY = "retention"
# Policy field -> key under a workspace's settings["retention"].
OVERRIDE_KEYS = {
    "version_retention_s": "version_seconds",
    "deleted_note_retention_s": "deleted_note_seconds",
    "job_retention_s": "job_seconds",
}
_WHAT = {
    "version_retention_s": "versions",
    "deleted_note_retention_s": "deleted notes",
    "job_retention_s": "finished jobs",
}
# Ids per IN (...) list: well below SQLite's and PostgreSQL's bound-parameter limits.
CHUNK = 500


def _seconds_problem(value: Any) -> str | None:
    """Why ``value`` is not a retention period, or None if it is one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected a whole number of seconds (0: keep forever), got {value!r}"
    if value < 0:
        return f"must be 0 (keep forever) or more, got {value}"
    if value > MAX_RETENTION_S:
        return f"at most {MAX_RETENTION_S} seconds (100 years; 0 keeps forever), got {value}"
    return None


@dataclass(frozen=True)
class RetentionPolicy:
    """Server-wide retention periods in seconds; 0 keeps forever."""

    version_retention_s: int = DEFAULT_VERSION_RETENTION_S
    deleted_note_retention_s: int = DEFAULT_DELETED_NOTE_RETENTION_S
    job_retention_s: int = DEFAULT_JOB_RETENTION_S

    def __post_init__(self) -> None:
        for name in OVERRIDE_KEYS:
            problem = _seconds_problem(getattr(self, name))
            if problem is not None:
                raise ValueError(f"{name}: {problem}")

    def for_workspace(self, settings: Mapping[str, Any] | None) -> RetentionPolicy:
        """This policy with a workspace's overrides applied; InvalidError if any is invalid."""
        values, problems = _resolve(self, settings)
        if problems:
            raise InvalidError(f"invalid workspace settings: {problems[0]}")
        return RetentionPolicy(**{name: value for name, value in values.items()})


def override_problems(settings: Mapping[str, Any] | None) -> list[str]:
    """What is wrong with a workspace's retention overrides (empty if nothing is).

    For checking settings before they are stored, e.g. ``retention.job_seconds: must be 0
    (keep forever) or more, got -1``.
    """
    return _resolve(RetentionPolicy(), settings)[1]


def _resolve(
    policy: RetentionPolicy, settings: Mapping[str, Any] | None
) -> tuple[dict[str, int | None], list[str]]:
    """Each period for a workspace (None: left alone, its override is invalid) and why."""
    values: dict[str, int | None] = {name: getattr(policy, name) for name in OVERRIDE_KEYS}
    overrides = None if settings is None else settings.get(SETTINGS_KEY)
    if overrides is None:
        return values, []
    if not isinstance(overrides, Mapping):
        problem = f"{SETTINGS_KEY}: expected an object, got {type(overrides).__name__}"
        return dict.fromkeys(values), [f"{problem}; nothing is pruned there until it is fixed"]
    known = set(OVERRIDE_KEYS.values())
    unknown = sorted(str(key) for key in overrides if key not in known)
    if unknown:
        problem = (
            f"{SETTINGS_KEY}: unknown key {unknown[0]!r} "
            f"(expected {', '.join(sorted(known))}); nothing is pruned there until it is fixed"
        )
        return dict.fromkeys(values), [problem]
    problems = []
    for name, key in OVERRIDE_KEYS.items():
        value = overrides.get(key)
        if value is None:
            continue
        problem = _seconds_problem(value)
        if problem is None:
            values[name] = value
        else:
            values[name] = None
            problems.append(
                f"{SETTINGS_KEY}.{key}: {problem}; its {_WHAT[name]} are kept until it is fixed"
            )
    return values, problems


# --- the report --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneReport:
    """What prune removed (or, with dry_run, would remove).

    Bytes are those of the rows' stored data: snapshot state and state vector for versions;
    every update and snapshot of a purged note; a job's payload, result and error (as text,
    so approximate). ``truncated``: a category hit the limit, so more may be due.
    """

    now: datetime
    dry_run: bool
    versions: tuple[tuple[str, int], ...] = ()  # (note id, version id), by version id
    version_bytes: int = 0
    note_ids: tuple[str, ...] = ()
    note_bytes: int = 0
    job_ids: tuple[str, ...] = ()
    job_bytes: int = 0
    problems: tuple[str, ...] = ()
    truncated: bool = False

    @property
    def version_ids(self) -> list[int]:
        return [version_id for _, version_id in self.versions]

    @property
    def removed(self) -> int:
        """Rows removed in all three categories."""
        return len(self.versions) + len(self.note_ids) + len(self.job_ids)

    def merge(self, other: PruneReport) -> PruneReport:
        """Both reports together (batches of one run)."""
        problems = self.problems + tuple(p for p in other.problems if p not in self.problems)
        return PruneReport(
            now=self.now,
            dry_run=self.dry_run,
            versions=self.versions + other.versions,
            version_bytes=self.version_bytes + other.version_bytes,
            note_ids=self.note_ids + other.note_ids,
            note_bytes=self.note_bytes + other.note_bytes,
            job_ids=self.job_ids + other.job_ids,
            job_bytes=self.job_bytes + other.job_bytes,
            problems=problems,
            truncated=other.truncated,
        )

    def as_dict(self, max_ids: int = 100) -> dict[str, Any]:
        """JSON-ready summary (e.g. a background task's result), at most max_ids ids each."""
        return {
            "now": self.now.isoformat(),
            "dry_run": self.dry_run,
            "versions": {
                "count": len(self.versions),
                "bytes": self.version_bytes,
                "ids": self.version_ids[:max_ids],
            },
            "deleted_notes": {
                "count": len(self.note_ids),
                "bytes": self.note_bytes,
                "ids": list(self.note_ids[:max_ids]),
            },
            "jobs": {
                "count": len(self.job_ids),
                "bytes": self.job_bytes,
                "ids": list(self.job_ids[:max_ids]),
            },
            "problems": list(self.problems),
            "truncated": self.truncated,
        }


# --- pruning -----------------------------------------------------------------------------------


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _cutoff(now: datetime, seconds: int) -> datetime | None:
    try:
        return now - timedelta(seconds=seconds)
    except OverflowError:  # a `now` close to year 1: nothing can be that old
        return None


# Found rows are (id, bytes, extra...); a Delete factory builds a DELETE of some of those ids
# that repeats the conditions they were found by, RETURNING the ids it removed.
DeleteBy = Callable[[Sequence[Any]], sa.Delete]


@dataclass
class _Group:
    """Rows of one category found under one set of conditions, and how to delete them."""

    rows: list[tuple[Any, ...]]
    delete: DeleteBy


@dataclass
class _Category:
    """What one category found so far, and the room left under the limit."""

    limit: int | None
    groups: list[_Group] = field(default_factory=list)
    truncated: bool = False

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        return [row for group in self.groups for row in group.rows]

    def find(
        self,
        conn: sa.Connection,
        select: sa.Select[Any],
        delete: DeleteBy,
        skip: Callable[[tuple[Any, ...]], bool] | None = None,
    ) -> None:
        """Run ``select`` (within the limit) and keep what it finds with its delete."""
        room = None if self.limit is None else self.limit - len(self.rows)
        if room is not None:
            if room <= 0:
                self.truncated = True
                return
            select = select.limit(room)
        found = [tuple(row) for row in conn.execute(select)]
        if room is not None and len(found) >= room:
            self.truncated = True
        if skip is not None:
            found = [row for row in found if not skip(row)]
        if found:
            self.groups.append(_Group(found, delete))


def _delete(
    conn: sa.Connection, group: _Group, rows: Sequence[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """Delete these found rows; the ones actually removed.

    The delete repeats the conditions, so a row that stopped qualifying since it was found
    (a note undeleted meanwhile, say) stays and is not reported.
    """
    gone: set[Any] = set()
    for chunk in _chunks([row[0] for row in rows]):
        gone.update(conn.execute(group.delete(chunk)).scalars())
    return [row for row in rows if row[0] in gone]


# A scope picks the rows of some workspaces: (workspace_id column) -> condition.
Scope = Callable[[sa.ColumnElement[Any]], sa.ColumnElement[bool]]


def _scopes(periods: Mapping[str, int | None]) -> Iterator[tuple[int, Scope]]:
    """(period, scope) for every group of workspaces sharing a period, IN lists chunked."""
    groups: dict[int, list[str]] = defaultdict(list)
    for workspace_id, seconds in periods.items():
        if seconds:  # 0 keeps forever; None is left alone
            groups[seconds].append(workspace_id)
    for seconds, ids in sorted(groups.items()):
        for chunk in _chunks(sorted(ids)):
            yield seconds, lambda column, chunk=chunk: column.in_(chunk)


def _superseded(snapshot: sa.Table) -> sa.ColumnElement[bool]:
    """This snapshot is not its note's newest (highest through_seq, then highest id): not the
    one load starts from. A scalar subquery with LIMIT 1 rather than EXISTS: PostgreSQL runs
    it per row on the (note_id, through_seq) index, where it may plan EXISTS as a hash join
    over every snapshot."""
    newer = note_snapshots.alias("newer")
    newest = (
        sa.select(newer.c.id)
        .where(newer.c.note_id == snapshot.c.note_id)
        .order_by(newer.c.through_seq.desc(), newer.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return snapshot.c.id != newest


def _find_versions(
    conn: sa.Connection,
    now: datetime,
    periods: Mapping[str, int | None],
    category: _Category,
    purged: set[str],
) -> None:
    snap = note_snapshots
    size = sa.func.length(snap.c.state) + sa.func.length(snap.c.state_vector)
    for seconds, scope in _scopes(periods):
        cutoff = _cutoff(now, seconds)
        if cutoff is None:
            continue
        expired = [snap.c.created_at < cutoff, _superseded(snap)]
        in_scope = snap.c.note_id.in_(sa.select(notes.c.id).where(scope(notes.c.workspace_id)))
        select = (
            sa.select(snap.c.id, size, snap.c.note_id).where(in_scope, *expired).order_by(snap.c.id)
        )

        def delete(ids: Sequence[Any]) -> sa.Delete:
            # created_at never changes; whether a snapshot is its note's newest may have.
            return sa.delete(snap).where(snap.c.id.in_(ids), _superseded(snap)).returning(snap.c.id)

        # Snapshots of notes about to be purged go with their note (counted there).
        category.find(conn, select, delete, skip=lambda row: row[2] in purged)


def _find_notes(
    conn: sa.Connection, now: datetime, periods: Mapping[str, int | None], category: _Category
) -> None:
    log_bytes = (
        sa.select(sa.func.coalesce(sa.func.sum(sa.func.length(note_updates.c.update)), 0))
        .where(note_updates.c.note_id == notes.c.id)
        .scalar_subquery()
    )
    snapshot_bytes = (
        sa.select(
            sa.func.coalesce(
                sa.func.sum(
                    sa.func.length(note_snapshots.c.state)
                    + sa.func.length(note_snapshots.c.state_vector)
                ),
                0,
            )
        )
        .where(note_snapshots.c.note_id == notes.c.id)
        .scalar_subquery()
    )
    for seconds, scope in _scopes(periods):
        cutoff = _cutoff(now, seconds)
        if cutoff is None:
            continue
        expired = [notes.c.deleted_at.is_not(None), notes.c.deleted_at < cutoff]
        select = (
            sa.select(notes.c.id, log_bytes + snapshot_bytes)
            .where(scope(notes.c.workspace_id), *expired)
            .order_by(notes.c.deleted_at, notes.c.id)
        )

        def delete(ids: Sequence[Any], expired: list[Any] = expired) -> sa.Delete:
            return sa.delete(notes).where(notes.c.id.in_(ids), *expired).returning(notes.c.id)

        category.find(conn, select, delete)


def _find_jobs(
    conn: sa.Connection,
    now: datetime,
    periods: Mapping[str, int | None],
    default_s: int,
    category: _Category,
) -> None:
    jobs = background_tasks
    size = (
        sa.func.length(sa.cast(jobs.c.payload, sa.Text))
        + sa.func.coalesce(sa.func.length(sa.cast(jobs.c.result, sa.Text)), 0)
        + sa.func.coalesce(sa.func.length(jobs.c.error), 0)
    )
    # Jobs of no workspace follow the server default.
    scopes: list[tuple[int, Scope]] = list(_scopes(periods))
    if default_s:
        scopes.append((default_s, lambda column: column.is_(None)))
    for seconds, scope in scopes:
        cutoff = _cutoff(now, seconds)
        if cutoff is None:
            continue
        # finished_at is set whenever a job finishes; updated_at covers rows written otherwise.
        expired = [
            jobs.c.status.in_(FINISHED),
            sa.func.coalesce(jobs.c.finished_at, jobs.c.updated_at) < cutoff,
        ]
        select = (
            sa.select(jobs.c.id, size)
            .where(scope(jobs.c.workspace_id), *expired)
            .order_by(jobs.c.id)
        )

        def delete(ids: Sequence[Any], expired: list[Any] = expired) -> sa.Delete:
            return sa.delete(jobs).where(jobs.c.id.in_(ids), *expired).returning(jobs.c.id)

        category.find(conn, select, delete)


@dataclass
class _Plan:
    """Everything found due, by category, in the order it is deleted (a note first, then the
    versions of other notes, then jobs)."""

    now: datetime
    notes: _Category
    versions: _Category
    jobs: _Category
    problems: list[str]

    @property
    def categories(self) -> tuple[_Category, _Category, _Category]:
        return self.notes, self.versions, self.jobs

    def report(self, dry_run: bool, removed: Mapping[int, list[tuple[Any, ...]]]) -> PruneReport:
        """The report of these rows; ``removed`` (by id() of a group) when some were deleted."""

        def rows(category: _Category) -> list[tuple[Any, ...]]:
            if dry_run:
                return category.rows
            return [row for group in category.groups for row in removed.get(id(group), [])]

        versions, notes_, jobs = rows(self.versions), rows(self.notes), rows(self.jobs)
        return PruneReport(
            now=self.now,
            dry_run=dry_run,
            versions=tuple(sorted(((row[2], row[0]) for row in versions), key=lambda p: p[1])),
            version_bytes=sum(int(row[1] or 0) for row in versions),
            note_ids=tuple(row[0] for row in notes_),
            note_bytes=sum(int(row[1] or 0) for row in notes_),
            job_ids=tuple(row[0] for row in jobs),
            job_bytes=sum(int(row[1] or 0) for row in jobs),
            problems=tuple(self.problems),
            truncated=any(category.truncated for category in self.categories),
        )


def _plan(conn: sa.Connection, policy: RetentionPolicy, now: datetime, limit: int | None) -> _Plan:
    """Find what is due (at most ``limit`` rows per category), deleting nothing."""
    if not isinstance(policy, RetentionPolicy):
        raise InvalidError(f"invalid policy: expected a RetentionPolicy, got {policy!r}")
    periods: dict[str, dict[str, int | None]] = {name: {} for name in OVERRIDE_KEYS}
    problems: list[str] = []
    query = sa.select(workspaces.c.id, workspaces.c.slug, workspaces.c.settings).order_by(
        workspaces.c.slug
    )
    for workspace_id, slug, settings in conn.execute(query):
        values, found = _resolve(policy, settings if isinstance(settings, Mapping) else None)
        problems += [f"workspace {slug!r}: {problem}" for problem in found]
        for name, value in values.items():
            periods[name][workspace_id] = value
    plan = _Plan(now, _Category(limit), _Category(limit), _Category(limit), problems)
    _find_notes(conn, now, periods["deleted_note_retention_s"], plan.notes)
    purged = {row[0] for row in plan.notes.rows}
    _find_versions(conn, now, periods["version_retention_s"], plan.versions, purged)
    _find_jobs(conn, now, periods["job_retention_s"], policy.job_retention_s, plan.jobs)
    return plan


def _positive(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidError(f"invalid {what}: expected an integer >= 1, got {value!r}")
    return value


def prune(
    conn: sa.Connection,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    limit: int | None = None,
) -> PruneReport:
    """Apply the retention policy (and workspace overrides) as of ``now``; the caller commits.

    Removes snapshots older than their workspace's version period except each note's newest,
    notes soft-deleted longer ago than the deleted-note period, and finished background tasks
    older than the job period. "Older than": strictly before ``now - period``.
    With ``dry_run`` nothing is deleted and the report says what would be. ``limit`` caps the
    rows per category in this call (``truncated`` then says more may be due); without it
    everything due goes.
    """
    now = as_now(now)
    limit = None if limit is None else _positive("limit", limit)
    plan = _plan(conn, policy, now, limit)
    removed: dict[int, list[tuple[Any, ...]]] = {}
    if not dry_run:
        for category in plan.categories:
            for group in category.groups:
                removed[id(group)] = _delete(conn, group, group.rows)
    return plan.report(dry_run, removed)


# Rows per category one pass of prune_batched finds (and holds in memory) before deleting.
SCAN_ROWS = 100_000


def prune_batched(
    db: Database,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    batch_size: int = 1000,
) -> PruneReport:
    """prune with transactions of its own: find in a read transaction, then delete in
    transactions of at most ``batch_size`` rows each.

    Writers (SQLite has one) wait for one short transaction at a time, not for the whole run,
    and each row is looked at about once. ``now`` is fixed once for the whole run. A failure
    leaves the batches before it committed: pruning again carries on.
    """
    now = as_now(now)
    batch_size = _positive("batch_size", batch_size)
    report: PruneReport | None = None
    while True:
        with db.read() as conn:
            plan = _plan(conn, policy, now, SCAN_ROWS)
        removed: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        for category in plan.categories:
            for group in category.groups:
                for start in range(0, len(group.rows), batch_size):
                    with db.begin() as conn:
                        batch = group.rows[start : start + batch_size]
                        removed[id(group)] += _delete(conn, group, batch)
        found = plan.report(dry_run=False, removed=removed)
        report = found if report is None else report.merge(found)
        # Stop when everything due was found, or when nothing found could be removed (rows that
        # stopped qualifying meanwhile), which would otherwise repeat forever.
        if not found.truncated or found.removed == 0:
            return report


__all__ = [
    "DEFAULT_DELETED_NOTE_RETENTION_S",
    "DEFAULT_JOB_RETENTION_S",
    "DEFAULT_VERSION_RETENTION_S",
    "OVERRIDE_KEYS",
    "PruneReport",
    "RetentionPolicy",
    "override_problems",
    "prune",
    "prune_batched",
]
