"""The stores' contract, the same on memory, SQLite and PostgreSQL (the ``db`` fixture).

CRUD and pagination run over every entity from one table of specs; validation, missing
references, conflicts and deletes are checked case by case. Tasks, background tasks and
schedules have their own files for what is particular to them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa

from persistence import schema
from persistence.errors import ConflictError, InvalidError, NotFoundError
from persistence.paging import MAX_LIMIT, Page
from persistence.stores import (
    agents,
    background_tasks,
    codebases,
    conversations,
    schedules,
    tasks,
    workspaces,
)

from .store_helpers import (
    T0,
    TIMEOUT,
    backend_pid,
    in_thread,
    needs_threads,
    new_workspace,
    wait_until_blocked,
)


@dataclass(frozen=True)
class Spec:
    module: ModuleType
    # make(conn, workspace_id, i, **extra) creates the i-th row of a workspace.
    make: Callable[..., dict[str, Any]]
    # listing(conn, workspace_id, **kwargs) lists a workspace's rows.
    listing: Callable[..., Page]
    change: dict[str, Any]
    fixed: tuple[str, ...] = ("workspace_id",)
    scoped: bool = True


SPECS = {
    "workspaces": Spec(
        workspaces,
        lambda conn, ws, i, **kw: workspaces.create(conn, f"s-{i}", **kw),
        lambda conn, ws, **kw: workspaces.list_workspaces(conn, **kw),
        {"name": "Renamed", "settings": {"retention_days": 7}, "slug": "renamed"},
        fixed=(),
        scoped=False,
    ),
    "agents": Spec(
        agents,
        lambda conn, ws, i, **kw: agents.create(conn, ws, f"agent {i}", "coder", **kw),
        lambda conn, ws, **kw: agents.list_agents(conn, ws, **kw),
        {"status": "busy", "config": {"tools": ["git", "pytest"]}, "last_seen_at": T0},
    ),
    "codebases": Spec(
        codebases,
        lambda conn, ws, i, **kw: codebases.create(conn, ws, f"repo-{i}", **kw),
        lambda conn, ws, **kw: codebases.list_codebases(conn, ws, **kw),
        {"repo_url": "https://example.com/r.git", "default_branch": "trunk", "language": None},
    ),
    "conversations": Spec(
        conversations,
        lambda conn, ws, i, **kw: conversations.create(conn, ws, title=f"chat {i}", **kw),
        lambda conn, ws, **kw: conversations.list_conversations(conn, ws, **kw),
        {"title": "Renamed", "status": "archived"},
    ),
    "tasks": Spec(
        tasks,
        lambda conn, ws, i, **kw: tasks.create(conn, ws, f"task {i}", **kw),
        lambda conn, ws, **kw: tasks.list_tasks(conn, ws, **kw),
        {"title": "Renamed", "priority": -3, "status": "blocked"},
    ),
    "background_tasks": Spec(
        background_tasks,
        lambda conn, ws, i, **kw: background_tasks.enqueue(
            conn, "k", {"i": i}, workspace_id=ws, **kw
        ),
        lambda conn, ws, **kw: background_tasks.list_jobs(conn, workspace_id=ws, **kw),
        {"priority": 5, "payload": {"x": [1, {"y": None}]}, "run_after": T0},
        fixed=("workspace_id", "kind", "status", "attempts", "locked_by"),
    ),
    "schedules": Spec(
        schedules,
        lambda conn, ws, i, **kw: schedules.create(
            conn, f"s{i}", "*/5 * * * *", "k", workspace_id=ws, **kw
        ),
        lambda conn, ws, **kw: schedules.list_schedules(conn, workspace_id=ws, **kw),
        {"job_payload": {"a": 1}, "job_kind": "other", "name": "renamed"},
        fixed=("workspace_id", "next_run_at", "last_run_at"),
    ),
}
specs = pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())


@specs
def test_create_get_update_delete_and_chosen_ids(db, spec: Spec):
    ws = new_workspace(db)
    with db.begin() as conn:
        row = spec.make(conn, ws, 1)
    assert re.fullmatch(r"[0-9a-f]{32}", row["id"])
    assert set(row) == set(spec.module.get.__self__.table.c.keys())
    assert row["created_at"].utcoffset() == timedelta(0)
    assert row["updated_at"] == row["created_at"]
    with db.begin() as conn:
        assert spec.module.get(conn, row["id"]) == row

    with db.begin() as conn:
        updated = spec.module.update(conn, row["id"], **spec.change)
    assert {name: updated[name] for name in spec.change} == spec.change
    assert updated["created_at"] == row["created_at"]
    assert updated["updated_at"] >= row["updated_at"]
    with db.begin() as conn:
        assert spec.module.get(conn, row["id"]) == updated
        # Nothing changes: nothing is written.
        assert spec.module.update(conn, row["id"], **spec.change) == updated
        with pytest.raises(InvalidError, match=r"unknown .* field 'bogus'"):
            spec.module.update(conn, row["id"], bogus=1)
        for name in ("id", "created_at", "updated_at", *spec.fixed):
            with pytest.raises(InvalidError, match=f"field '{name}' cannot be updated"):
                spec.module.update(conn, row["id"], **{name: row[name]})
        with pytest.raises(NotFoundError, match="'missing' not found"):
            spec.module.update(conn, "missing", **spec.change)

    with db.begin() as conn:
        spec.module.delete(conn, row["id"])
    with db.begin() as conn:
        with pytest.raises(NotFoundError, match=f"{row['id']!r} not found"):
            spec.module.get(conn, row["id"])
        with pytest.raises(NotFoundError):
            spec.module.delete(conn, row["id"])
        with pytest.raises(InvalidError, match="id"):
            spec.module.get(conn, "not an id!")
        with pytest.raises(InvalidError, match="id"):
            spec.module.get(conn, "x" * 129)

    # Callers may choose ids.
    with db.begin() as conn:
        assert spec.make(conn, ws, 1, id="Chosen_id-1")["id"] == "Chosen_id-1"
        assert spec.module.get(conn, "Chosen_id-1")["id"] == "Chosen_id-1"
    with db.begin() as conn:
        with pytest.raises(ConflictError, match="'Chosen_id-1' already exists"):
            spec.make(conn, ws, 2, id="Chosen_id-1")
        for bad in ("", "has space", "x" * 129, "a/b", 7):
            with pytest.raises(InvalidError, match="id"):
                spec.make(conn, ws, 3, id=bad)


@specs
def test_pagination_is_newest_first_without_gaps_or_duplicates(db, spec: Spec):
    ws, other = new_workspace(db), new_workspace(db, "w2")
    with db.begin() as conn:
        for i in range(7):
            spec.make(conn, ws, i)
        spec.make(conn, other, 99)  # another workspace's row never shows up
    expected_count = 7 if spec.scoped else 10  # workspaces: w1, w2 and the eight made
    with db.begin() as conn:
        everything = spec.listing(conn, ws, limit=MAX_LIMIT)
        assert everything.next_cursor is None
        rows = everything.items
        assert len(rows) == expected_count
        keys = [(row["created_at"], row["id"]) for row in rows]
        assert keys == sorted(keys, reverse=True)

        pages, cursor = [], None
        while True:
            page = spec.listing(conn, ws, limit=3, cursor=cursor)
            pages.append(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        sizes = [min(3, expected_count - start) for start in range(0, expected_count, 3)]
        assert [len(items) for items in pages] == sizes
        assert [row for items in pages for row in items] == rows

        exact = spec.listing(conn, ws, limit=expected_count)
        assert exact.items == rows and exact.next_cursor is None

        for limit in (0, -1, MAX_LIMIT + 1, "10", 2.5, True):
            with pytest.raises(InvalidError, match="limit"):
                spec.listing(conn, ws, limit=limit)
        for cursor in ("garbage!", "W10", "eyJhIjoxfQ", "WyJ4IiwieSJd", 5, "x" * 2000):
            with pytest.raises(InvalidError, match="cursor"):
                spec.listing(conn, ws, cursor=cursor)


def test_rows_created_at_the_same_instant_page_by_id(db):
    with db.begin() as conn:
        made = [background_tasks.enqueue(conn, "k", now=T0)["id"] for _ in range(5)]
    seen, cursor = [], None
    with db.begin() as conn:
        while True:
            page = background_tasks.list_jobs(conn, limit=2, cursor=cursor)
            seen += [row["id"] for row in page.items]
            if (cursor := page.next_cursor) is None:
                break
    assert seen == sorted(made, reverse=True)


def test_list_filters(db):
    ws = new_workspace(db)
    with db.begin() as conn:
        coder = agents.create(conn, ws, "a", "coder")
        agents.create(conn, ws, "b", "reviewer", status="offline")
        agents.create(conn, ws, "c", "coder", status="busy")
        rust = codebases.create(conn, ws, "r", language="rust")
        codebases.create(conn, ws, "p", language="python")
        chat = conversations.create(conn, ws, agent_id=coder["id"])
        conversations.create(conn, ws, status="closed")
        tasks.create(conn, ws, "t1", assignee_id=coder["id"], codebase_id=rust["id"])
        tasks.create(conn, ws, "t2", status="done")
        tasks.create(conn, ws, "t3", status="blocked")
        background_tasks.enqueue(conn, "compact", workspace_id=ws)
        background_tasks.enqueue(conn, "prune")
        schedules.create(conn, "nightly", "0 3 * * *", "compact", workspace_id=ws)
        schedules.create(conn, "off", "0 4 * * *", "prune", enabled=False)

    def names(page: Page, key: str = "name") -> list[Any]:
        return sorted(row[key] for row in page.items)

    with db.begin() as conn:
        assert names(agents.list_agents(conn, ws, status="busy")) == ["c"]
        assert names(agents.list_agents(conn, ws, status=["idle", "busy"])) == ["a", "c"]
        assert names(agents.list_agents(conn, ws, role="coder", status="busy")) == ["c"]
        assert names(agents.list_agents(conn, ws, status=[])) == []
        assert names(codebases.list_codebases(conn, ws, language="rust")) == ["r"]
        assert names(conversations.list_conversations(conn, ws, status="open"), "id") == [
            chat["id"]
        ]
        by_agent = conversations.list_conversations(conn, ws, agent_id=coder["id"])
        assert names(by_agent, "id") == [chat["id"]]
        assert names(tasks.list_tasks(conn, ws, status=tasks.OPEN_STATUSES), "title") == [
            "t1",
            "t3",
        ]
        assert names(tasks.list_tasks(conn, ws, assignee_id=coder["id"]), "title") == ["t1"]
        assert names(tasks.list_tasks(conn, ws, codebase_id=rust["id"]), "title") == ["t1"]
        assert names(background_tasks.list_jobs(conn, kind="prune"), "kind") == ["prune"]
        assert names(background_tasks.list_jobs(conn, workspace_id=ws), "kind") == ["compact"]
        assert len(background_tasks.list_jobs(conn, status="queued").items) == 2
        assert names(schedules.list_schedules(conn, enabled=False)) == ["off"]
        assert names(schedules.list_schedules(conn, workspace_id=ws)) == ["nightly"]

        with pytest.raises(InvalidError, match="status filter"):
            agents.list_agents(conn, ws, status="sleeping")
        with pytest.raises(InvalidError, match="status filter"):
            tasks.list_tasks(conn, ws, status=["todo", "later"])
        with pytest.raises(NotFoundError, match="workspace 'nowhere' not found"):
            agents.list_agents(conn, "nowhere")
        with pytest.raises(NotFoundError, match="workspace 'nowhere' not found"):
            background_tasks.list_jobs(conn, workspace_id="nowhere")


def _bad_input_cases(ws: str) -> dict[str, tuple[Callable[[sa.Connection], Any], str]]:
    # Each would reach the database (and make the driver raise on PostgreSQL, or store junk on
    # SQLite) if the store did not refuse it first.
    long = "x" * 201
    return {
        "slug with uppercase": (lambda c: workspaces.create(c, "Bad"), "workspace slug"),
        "slug starting with -": (lambda c: workspaces.create(c, "-x"), "workspace slug"),
        "slug too long": (lambda c: workspaces.create(c, "a" * 65), "at most 64"),
        "slug not a string": (lambda c: workspaces.create(c, 5), "expected a string"),
        "reserved slug": (lambda c: workspaces.create(c, "default"), "reserved"),
        "name too long": (lambda c: workspaces.create(c, "ok", long), "at most 200"),
        "blank name": (lambda c: workspaces.create(c, "ok", "  "), "must not be empty"),
        "settings not a dict": (lambda c: workspaces.create(c, "ok", settings=[]), "JSON object"),
        "settings NaN": (
            lambda c: workspaces.create(c, "ok", settings={"a": float("nan")}),
            "JSON",
        ),
        "settings NUL": (lambda c: workspaces.create(c, "ok", settings={"a": "\x00"}), "NUL"),
        "settings int key": (lambda c: workspaces.create(c, "ok", settings={1: 2}), "keys"),
        "settings set": (lambda c: workspaces.create(c, "ok", settings={"a": {1}}), "JSON"),
        "settings too deep": (
            lambda c: workspaces.create(c, "ok", settings=_nested(100)),
            "nested deeper",
        ),
        "description NUL": (lambda c: workspaces.create(c, "ok", description="a\x00"), "NUL"),
        "lone surrogate": (lambda c: workspaces.create(c, "ok", description="\ud800"), "Unicode"),
        "agent status": (lambda c: agents.create(c, ws, "a", "r", status="asleep"), "one of"),
        "agent empty name": (lambda c: agents.create(c, ws, "", "r"), "agent name"),
        "agent role too long": (lambda c: agents.create(c, ws, "a", "r" * 65), "at most 64"),
        "agent config str": (lambda c: agents.create(c, ws, "a", "r", config="{}"), "JSON"),
        "agent workspace id": (lambda c: agents.create(c, ws + "!", "a", "r"), "workspace_id"),
        "agent seen naive": (
            lambda c: agents.update(c, _agent(c, ws), last_seen_at=datetime(2030, 1, 1)),
            "timezone-aware",
        ),
        "codebase url": (lambda c: codebases.create(c, ws, "c", repo_url="u" * 2001), "2000"),
        "codebase branch": (lambda c: codebases.create(c, ws, "c", default_branch=""), "empty"),
        "task priority str": (lambda c: tasks.create(c, ws, "t", priority="1"), "integer"),
        "task priority bool": (lambda c: tasks.create(c, ws, "t", priority=True), "integer"),
        "task priority big": (lambda c: tasks.create(c, ws, "t", priority=2**31), "between"),
        "task status": (lambda c: tasks.create(c, ws, "t", status="doing"), "one of"),
        "task title": (lambda c: tasks.create(c, ws, "t" * 501), "at most 500"),
        "conversation status": (
            lambda c: conversations.create(c, ws, status="gone"),
            "one of open, closed, archived",
        ),
        "message role": (lambda c: conversations.add_message(c, "x", "robot", "hi"), "role"),
        "message content": (lambda c: conversations.add_message(c, "x", "user", None), "string"),
        "message metadata": (
            lambda c: conversations.add_message(c, "x", "user", "hi", metadata=[1]),
            "JSON object",
        ),
        "job kind": (lambda c: background_tasks.enqueue(c, ""), "empty"),
        "job attempts": (lambda c: background_tasks.enqueue(c, "k", max_attempts=0), "between"),
        "job run_after": (
            lambda c: background_tasks.enqueue(c, "k", run_after=datetime(2030, 1, 1)),
            "timezone-aware",
        ),
        "job priority float": (lambda c: background_tasks.enqueue(c, "k", priority=1.5), "int"),
        "schedule timezone": (
            lambda c: schedules.create(c, "s", "* * * * *", "k", timezone="Mars/Olympus"),
            "time zone",
        ),
        "update status of job": (
            lambda c: background_tasks.update(c, "x", status="running"),
            "cannot be updated",
        ),
    }


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _agent(conn: sa.Connection, ws: str) -> str:
    return agents.create(conn, ws, "someone", "r")["id"]


def test_bad_input_is_an_invalid_error_naming_the_problem(db, subtests):
    ws = new_workspace(db)
    for name, (call, needle) in _bad_input_cases(ws).items():
        with subtests.test(msg=name), pytest.raises(InvalidError, match=needle), db.begin() as conn:
            call(conn)
    with db.begin() as conn:
        assert len(workspaces.list_workspaces(conn).items) == 1  # nothing half-written


def test_lengths_at_the_limit_are_accepted(db):
    ws = new_workspace(db)
    with db.begin() as conn:
        row = workspaces.create(conn, "a" * 64, "n" * 200, id="i" * 128)
        agent = agents.create(conn, ws, "n" * 200, "r" * 64, model="m" * 200)
        task = tasks.create(conn, ws, "t" * 500, priority=-(2**31))
        job = background_tasks.enqueue(conn, "k" * 64, {"ünï": "çødé ✓"}, priority=2**31 - 1)
    with db.begin() as conn:
        assert workspaces.get(conn, row["id"]) == row
        assert agents.get(conn, agent["id"]) == agent
        assert tasks.get(conn, task["id"]) == task
        assert background_tasks.get(conn, job["id"]) == job


def test_missing_references_are_not_found(db, subtests):
    ws, other = new_workspace(db), new_workspace(db, "w2")
    with db.begin() as conn:
        foreign_agent = agents.create(conn, other, "a", "coder")["id"]
        foreign_codebase = codebases.create(conn, other, "c")["id"]
        conn.execute(
            schema.notes.insert().values(
                [
                    _note("live-note", ws),
                    _note("gone-note", ws, deleted_at=T0),
                    _note("foreign-note", other),
                ]
            )
        )
    cases: dict[str, tuple[Callable[[sa.Connection], Any], str]] = {
        "agent in no workspace": (
            lambda c: agents.create(c, "nowhere", "a", "r"),
            "workspace 'nowhere' not found",
        ),
        "codebase in no workspace": (
            lambda c: codebases.create(c, "nowhere", "c"),
            "workspace 'nowhere'",
        ),
        "task assignee": (
            lambda c: tasks.create(c, ws, "t", assignee_id="nobody"),
            "agent 'nobody' not found",
        ),
        "task assignee of another workspace": (
            lambda c: tasks.create(c, ws, "t", assignee_id=foreign_agent),
            f"agent '{foreign_agent}' not found in workspace '{ws}'",
        ),
        "task codebase": (
            lambda c: tasks.create(c, ws, "t", codebase_id=foreign_codebase),
            "codebase",
        ),
        "task note": (lambda c: tasks.create(c, ws, "t", note_id="nope"), "note 'nope'"),
        "task deleted note": (
            lambda c: tasks.create(c, ws, "t", note_id="gone-note"),
            "note 'gone-note' not found",
        ),
        "task foreign note": (
            lambda c: tasks.create(c, ws, "t", note_id="foreign-note"),
            "note 'foreign-note' not found in workspace",
        ),
        "task update assignee": (
            lambda c: tasks.update(c, tasks.create(c, ws, "t")["id"], assignee_id="nobody"),
            "agent 'nobody'",
        ),
        "conversation agent": (
            lambda c: conversations.create(c, ws, agent_id=foreign_agent),
            "agent",
        ),
        "message to nothing": (
            lambda c: conversations.add_message(c, "nothing", "user", "hi"),
            "conversation 'nothing' not found",
        ),
        "messages of nothing": (
            lambda c: conversations.list_messages(c, "nothing"),
            "conversation 'nothing' not found",
        ),
        "job workspace": (
            lambda c: background_tasks.enqueue(c, "k", workspace_id="nowhere"),
            "workspace 'nowhere'",
        ),
        "job schedule": (
            lambda c: background_tasks.enqueue(c, "k", schedule_id="never"),
            "schedule 'never' not found",
        ),
        "schedule workspace": (
            lambda c: schedules.create(c, "s", "* * * * *", "k", workspace_id="nowhere"),
            "workspace 'nowhere'",
        ),
        "workspace slug": (
            lambda c: workspaces.get_by_slug(c, "nope"),
            "workspace with slug 'nope' not found",
        ),
    }
    for name, (call, needle) in cases.items():
        with (
            subtests.test(msg=name),
            pytest.raises(NotFoundError, match=re.escape(needle)),
            db.begin() as conn,
        ):
            call(conn)
    with db.begin() as conn:
        task = tasks.create(conn, ws, "t", note_id="live-note")
        assert task["note_id"] == "live-note"
        assert tasks.list_tasks(conn, ws).items == [task]  # nothing else was written


def _note(note_id: str, ws: str, deleted_at: datetime | None = None) -> dict[str, Any]:
    return {
        "id": note_id,
        "workspace_id": ws,
        "title": "",
        "last_seq": 0,
        "created_at": T0,
        "updated_at": T0,
        "deleted_at": deleted_at,
    }


def test_duplicates_are_conflicts(db, subtests):
    ws, other = new_workspace(db), new_workspace(db, "w2")
    with db.begin() as conn:
        agents.create(conn, ws, "bob", "coder")
        agents.create(conn, other, "bob", "coder")  # another workspace: fine
        codebases.create(conn, ws, "api")
        codebases.create(conn, other, "api")
        schedules.create(conn, "nightly", "0 3 * * *", "compact")
        alice = agents.create(conn, ws, "alice", "coder")["id"]
    cases: dict[str, tuple[Callable[[sa.Connection], Any], str]] = {
        "workspace slug": (lambda c: workspaces.create(c, "w1"), "workspace with slug 'w1'"),
        "workspace slug update": (
            lambda c: workspaces.update(c, other, slug="w1"),
            "slug 'w1' already exists",
        ),
        "agent name": (lambda c: agents.create(c, ws, "bob", "x"), "name 'bob' already exists"),
        "agent rename": (lambda c: agents.update(c, alice, name="bob"), "name 'bob'"),
        "codebase name": (lambda c: codebases.create(c, ws, "api"), "name 'api' already exists"),
        "schedule name": (
            lambda c: schedules.create(c, "nightly", "* * * * *", "k", workspace_id=ws),
            "schedule with name 'nightly' already exists",
        ),
    }
    for name, (call, needle) in cases.items():
        with (
            subtests.test(msg=name),
            pytest.raises(ConflictError, match=needle),
            db.begin() as conn,
        ):
            call(conn)


def test_a_refused_write_leaves_the_transaction_usable(db):
    ws = new_workspace(db)
    with db.begin() as conn:
        agents.create(conn, ws, "bob", "coder")
        with pytest.raises(ConflictError):
            agents.create(conn, ws, "bob", "coder")
        with pytest.raises(InvalidError):
            agents.create(conn, ws, "x" * 300, "coder")
        agents.create(conn, ws, "carol", "coder")
    with db.begin() as conn:
        assert sorted(a["name"] for a in agents.list_agents(conn, ws).items) == ["bob", "carol"]


def test_a_concurrent_duplicate_is_a_conflict_and_the_transaction_survives(db):
    # PostgreSQL: B's pre-check cannot see A's uncommitted row, so B's INSERT waits for A and
    # then violates the unique constraint inside the store's savepoint. SQLite: B waits at
    # BEGIN and its pre-check sees the row. Either way: ConflictError, B's transaction usable.
    needs_threads(db)
    ws = new_workspace(db)
    pids: list[int | None] = []

    def b() -> str:
        with db.begin() as conn:
            pids.append(backend_pid(conn))
            try:
                agents.create(conn, ws, "bob", "coder")
            except ConflictError as exc:
                agents.create(conn, ws, "bob-2", "coder")
                return str(exc)
            return "no conflict"

    with db.begin() as conn:
        agents.create(conn, ws, "bob", "coder")
        outcome = in_thread(b)
        wait_until_blocked(db, pids, outcome)
    assert "name 'bob' already exists" in outcome.result(TIMEOUT)
    with db.begin() as conn:
        assert sorted(a["name"] for a in agents.list_agents(conn, ws).items) == ["bob", "bob-2"]


def test_workspaces_by_slug_and_the_default_workspace(db):
    with db.begin() as conn:
        made = workspaces.create(conn, "team-a", "Team A", description="d", settings={"k": 1})
        assert workspaces.get_by_slug(conn, "team-a") == made
        assert made["name"] == "Team A" and workspaces.create(conn, "b")["name"] == "b"
        default = workspaces.ensure_default(conn)
        assert (default["id"], default["slug"]) == ("default", "default")
        assert workspaces.ensure_default(conn) == default
    with db.begin() as conn:
        assert workspaces.ensure_default(conn) == default
        with pytest.raises(InvalidError, match="reserved"):
            workspaces.update(conn, made["id"], slug="default")


def test_ensure_default_is_race_safe(db):
    needs_threads(db)
    pids: list[int | None] = []

    def b() -> dict[str, Any]:
        with db.begin() as conn:
            pids.append(backend_pid(conn))
            return workspaces.ensure_default(conn)

    with db.begin() as conn:
        mine = workspaces.ensure_default(conn)
        theirs = in_thread(b)
        wait_until_blocked(db, pids, theirs)
    assert theirs.result(TIMEOUT) == mine


def test_messages_are_numbered_per_conversation(db):
    ws = new_workspace(db)
    with db.begin() as conn:
        chat = conversations.create(conn, ws, title="Plan")
        other = conversations.create(conn, ws)
        first = conversations.add_message(
            conn, chat["id"], "user", "hello", author="ann", metadata={"client": "web"}, now=T0
        )
        for i in range(4):
            conversations.add_message(conn, chat["id"], "assistant", f"reply {i}")
        assert conversations.add_message(conn, other["id"], "system", "")["seq"] == 1
    assert first["seq"] == 1 and first["author"] == "ann" and first["created_at"] == T0
    with db.begin() as conn:
        assert conversations.get_message(conn, first["id"]) == first
        assert conversations.get(conn, chat["id"])["updated_at"] > chat["updated_at"]
        seqs, cursor = [], None
        while True:
            page = conversations.list_messages(conn, chat["id"], limit=2, cursor=cursor)
            seqs += [message["seq"] for message in page.items]
            if (cursor := page.next_cursor) is None:
                break
        assert seqs == [1, 2, 3, 4, 5]
        before = conversations.get(conn, chat["id"])
        # A refused message writes nothing, even when the caller goes on and commits.
        with pytest.raises(InvalidError):
            conversations.add_message(conn, chat["id"], "user", "x", metadata={"a": {1}})
    with db.begin() as conn:
        assert conversations.get(conn, chat["id"]) == before
        assert len(conversations.list_messages(conn, chat["id"], limit=MAX_LIMIT).items) == 5
        conversations.delete(conn, chat["id"])
        with pytest.raises(NotFoundError, match="message"):
            conversations.get_message(conn, first["id"])


def test_concurrent_messages_get_distinct_seqs(db):
    needs_threads(db)
    ws = new_workspace(db)
    with db.begin() as conn:
        chat = conversations.create(conn, ws)["id"]

    def writer(name: str) -> None:
        for i in range(15):
            with db.begin() as conn:
                conversations.add_message(conn, chat, "user", f"{name} {i}")

    futures = [in_thread(lambda name=name: writer(name)) for name in ("a", "b", "c")]
    for future in futures:
        future.result(TIMEOUT)
    with db.begin() as conn:
        page = conversations.list_messages(conn, chat, limit=MAX_LIMIT)
    assert [message["seq"] for message in page.items] == list(range(1, 46))


def test_deleting_a_workspace_deletes_what_it_owns(db):
    ws, other = new_workspace(db), new_workspace(db, "w2")
    owned: dict[ModuleType, list[str]] = {}
    with db.begin() as conn:
        for keep in (False, True):
            target = other if keep else ws
            agent = agents.create(conn, target, "a", "r")
            chat = conversations.create(conn, target, agent_id=agent["id"])
            conversations.add_message(conn, chat["id"], "user", "hi")
            first, second = tasks.create(conn, target, "t1"), tasks.create(conn, target, "t2")
            tasks.add_dependency(conn, first["id"], second["id"])
            made = {
                agents: agent,
                conversations: chat,
                tasks: first,
                codebases: codebases.create(conn, target, "c"),
                schedules: schedules.create(
                    conn, f"s{keep}", "* * * * *", "k", workspace_id=target
                ),
                background_tasks: background_tasks.enqueue(conn, "k", workspace_id=target),
            }
            if not keep:
                owned = {module: row["id"] for module, row in made.items()}
    with db.begin() as conn:
        workspaces.delete(conn, ws)
    with db.begin() as conn:
        for module, row_id in owned.items():
            with pytest.raises(NotFoundError):
                module.get(conn, row_id)
        counts = {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in (
                schema.agents,
                schema.conversations,
                schema.conversation_messages,
                schema.tasks,
                schema.task_dependencies,
                schema.codebases,
                schema.schedules,
                schema.background_tasks,
            )
        }
    assert counts == {
        "agents": 1,
        "conversations": 1,
        "conversation_messages": 1,
        "tasks": 2,
        "task_dependencies": 1,
        "codebases": 1,
        "schedules": 1,
        "background_tasks": 1,
    }


def test_deleting_an_agent_or_codebase_clears_references(db):
    ws = new_workspace(db)
    with db.begin() as conn:
        agent = agents.create(conn, ws, "a", "r")
        repo = codebases.create(conn, ws, "c")
        task = tasks.create(conn, ws, "t", assignee_id=agent["id"], codebase_id=repo["id"])
        chat = conversations.create(conn, ws, agent_id=agent["id"])
    with db.begin() as conn:
        agents.delete(conn, agent["id"])
        codebases.delete(conn, repo["id"])
    with db.begin() as conn:
        assert tasks.get(conn, task["id"])["assignee_id"] is None
        assert tasks.get(conn, task["id"])["codebase_id"] is None
        assert conversations.get(conn, chat["id"])["agent_id"] is None
