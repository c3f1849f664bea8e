"""Arbitrary input is either stored exactly or refused with InvalidError, on every driver.

The stores validate before any SQL runs; this is how we know that no driver exception (a
PostgreSQL DataError on a NUL byte, an over-long string, an out-of-range integer) ever stands
in for that validation, and that what is accepted reads back unchanged.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistence.errors import InvalidError
from persistence.stores import agents, background_tasks, tasks, workspaces

# Floats are left out on purpose: JSONB keeps numbers as decimals and may hand 1e23 back as
# the integer 10**23, which is equal in value but not in type.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
# Strings at and past the edges, which random text rarely hits.
edges = st.sampled_from(["", " ", "a\x00b", "\ud800", "x" * 200, "x" * 201, "é" * 200, "😀" * 201])
names = st.text(max_size=210) | edges | st.integers() | st.none()
fuzz = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@fuzz
@given(
    name=names,
    role=st.text(max_size=70) | edges,
    config=st.dictionaries(st.text(max_size=8), json_values, max_size=4) | json_values,
    priority=st.integers(-(2**40), 2**40) | st.booleans() | st.floats(allow_nan=True),
)
def test_input_is_stored_exactly_or_refused(db, name, role, config, priority):
    with db.connect() as conn, conn.begin() as transaction:
        ws = workspaces.create(conn, "fuzz")["id"]
        try:
            agent = agents.create(conn, ws, name, role, config=config)
        except InvalidError:
            pass
        else:
            assert agents.get(conn, agent["id"]) == agent
            assert (agent["name"], agent["role"], agent["config"]) == (name, role, config or {})
        try:
            task = tasks.create(conn, ws, "t", priority=priority)
        except InvalidError:
            pass
        else:
            assert tasks.get(conn, task["id"])["priority"] == priority
        try:
            job = background_tasks.enqueue(conn, role, config, priority=priority)
        except InvalidError:
            pass
        else:
            assert background_tasks.get(conn, job["id"]) == job
        transaction.rollback()
