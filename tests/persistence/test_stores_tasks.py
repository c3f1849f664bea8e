"""Tasks: completion tracking and the dependency graph, which never gets a cycle."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import sqlalchemy as sa

from persistence import schema
from persistence.errors import ConflictError, InvalidError, NotFoundError
from persistence.stores import tasks

from .store_helpers import (
    T0,
    TIMEOUT,
    backend_pid,
    in_thread,
    needs_threads,
    new_workspace,
    wait_until_blocked,
)


def edges(db) -> set[tuple[str, str]]:
    deps = schema.task_dependencies
    with db.begin() as conn:
        return {tuple(row) for row in conn.execute(sa.select(deps.c.task_id, deps.c.depends_on_id))}


def make_tasks(db, ws: str, *names: str) -> None:
    with db.begin() as conn:
        for name in names:
            tasks.create(conn, ws, name, id=name)


def test_done_sets_completed_at_and_leaving_done_clears_it(db):
    ws = new_workspace(db)
    with db.begin() as conn:
        task = tasks.create(conn, ws, "t")
        assert task["completed_at"] is None
        done = tasks.update(conn, task["id"], status="done", now=T0)
        assert done["completed_at"] == T0 and done["updated_at"] == T0
        later = T0 + timedelta(hours=1)
        # Still done: completed_at keeps the time it was first done.
        assert tasks.update(conn, task["id"], title="renamed", now=later)["completed_at"] == T0
        assert tasks.update(conn, task["id"], status="todo")["completed_at"] is None
        assert tasks.create(conn, ws, "born done", status="done")["completed_at"] is not None
    with db.begin() as conn:
        assert tasks.get(conn, task["id"])["completed_at"] is None


def test_dependencies_in_both_directions(db):
    ws = new_workspace(db)
    make_tasks(db, ws, "build", "test", "ship")
    with db.begin() as conn:
        edge = tasks.add_dependency(conn, "ship", "test")
        assert edge == {"task_id": "ship", "depends_on_id": "test"}
        tasks.add_dependency(conn, "ship", "build")
        tasks.add_dependency(conn, "test", "build")
        assert tasks.add_dependency(conn, "ship", "test") == edge  # again: a no-op
    with db.begin() as conn:
        assert [t["id"] for t in tasks.list_dependencies(conn, "ship")] == ["build", "test"]
        assert [t["id"] for t in tasks.list_dependents(conn, "build")] == ["test", "ship"]
        assert tasks.list_dependencies(conn, "build") == []
        assert tasks.list_dependents(conn, "ship") == []
        with pytest.raises(NotFoundError, match="task 'nope' not found"):
            tasks.list_dependencies(conn, "nope")
        tasks.remove_dependency(conn, "ship", "build")
        with pytest.raises(NotFoundError, match="'ship' does not depend on task 'build'"):
            tasks.remove_dependency(conn, "ship", "build")
    assert edges(db) == {("ship", "test"), ("test", "build")}
    with db.begin() as conn:
        tasks.delete(conn, "test")
    assert edges(db) == set()


def test_cycles_self_dependencies_and_unknown_tasks_are_refused(db):
    ws, other = new_workspace(db), new_workspace(db, "w2")
    make_tasks(db, ws, "a", "b", "c", "d")
    with db.begin() as conn:
        tasks.create(conn, other, "elsewhere", id="x")
        tasks.add_dependency(conn, "a", "b")
        tasks.add_dependency(conn, "b", "c")
        # A diamond is not a cycle: a -> b -> c and a -> d -> c.
        tasks.add_dependency(conn, "a", "d")
        tasks.add_dependency(conn, "d", "c")
    before = edges(db)
    refused = [
        (("c", "a"), ConflictError, "would create a cycle: c -> a -> b -> c"),
        (("b", "a"), ConflictError, "cycle: b -> a -> b"),
        (("c", "b"), ConflictError, "cycle: c -> b -> c"),
        (("a", "a"), InvalidError, "cannot depend on itself"),
        (("a", "zzz"), NotFoundError, "task 'zzz' not found"),
        (("zzz", "a"), NotFoundError, "task 'zzz' not found"),
        (("a", "x"), InvalidError, "of another workspace"),
        (("a", "bad id"), InvalidError, "task id"),
    ]
    for (task_id, depends_on_id), error, message in refused:
        with pytest.raises(error, match=message), db.begin() as conn:
            tasks.add_dependency(conn, task_id, depends_on_id)
    assert edges(db) == before
    with db.begin() as conn:
        # The caller may carry on after a refusal: nothing was half-written.
        with pytest.raises(ConflictError):
            tasks.add_dependency(conn, "c", "a")
        tasks.add_dependency(conn, "b", "d")
    assert edges(db) == before | {("b", "d")}
    with db.begin() as conn:
        tasks.remove_dependency(conn, "a", "b")
        tasks.remove_dependency(conn, "a", "d")
        tasks.add_dependency(conn, "c", "a")  # no path from a to c any more


def test_long_chains_are_checked_in_one_walk(db):
    ws = new_workspace(db)
    names = [f"t{i:03d}" for i in range(60)]
    make_tasks(db, ws, *names)
    with db.begin() as conn:
        for first, second in itertools.pairwise(names):
            tasks.add_dependency(conn, first, second)
        with pytest.raises(ConflictError, match=f"cycle: {names[-1]} -> {names[0]} -> "):
            tasks.add_dependency(conn, names[-1], names[0])


def test_two_transactions_cannot_each_add_half_of_a_cycle(db):
    # Without the workspace lock each would see no path and both edges would be stored.
    needs_threads(db)
    ws = new_workspace(db)
    make_tasks(db, ws, "a", "b")
    pids: list[int | None] = []

    def b_depends_on_a() -> str:
        with db.begin() as conn:
            pids.append(backend_pid(conn))
            try:
                tasks.add_dependency(conn, "b", "a")
            except ConflictError as exc:
                return str(exc)
            return "added"

    with db.begin() as conn:
        tasks.add_dependency(conn, "a", "b")
        outcome = in_thread(b_depends_on_a)
        wait_until_blocked(db, pids, outcome)
    assert "cycle: b -> a -> b" in outcome.result(TIMEOUT)
    assert edges(db) == {("a", "b")}
