"""Property-based API test: schemathesis walks the app's own /openapi.json.

Every operation in the document, whoever added it, is called with generated inputs (its
coverage phase: boundary and missing values, valid and invalid; then random ones) and every
answer must be: no 5xx, a status code the document lists for that operation, the content type
it declares, headers and a body matching the declared schemas.

Random ids almost always name nothing, which would only ever test 404s. So each database is
seeded with one row of every entity under known ids, and the generated path parameters, query
parameters and body fields named like those ids are swapped for a seeded id about half the time
(a successful DELETE is followed by seeding again).

Not enabled: positive_data_acceptance and negative_data_rejection. The stores refuse values
the document cannot describe (NUL characters, whitespace-only names, an opaque `cursor` that was
not handed out, cron syntax, time zone names), and path parameters are declared as plain
strings (openapi.py), so a malformed id in a path is "valid" to the document yet a 422 by
design; those checks would count all of these as failures.

The schema is loaded once from an app that never starts, and each test calls a module-scoped
app per driver: schemathesis.pytest.from_fixture cannot be used here, it reads
pytest's Function._nodeid, which pytest 9.2 no longer has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.python import asgi
from starlette.testclient import TestClient

from persistence import migrate, notes
from persistence import versions as version_store
from persistence.config import database_config_from_env
from persistence.engine import Database
from persistence.errors import NotFoundError
from persistence.stores import (
    agents,
    background_tasks,
    codebases,
    conversations,
    schedules,
    tasks,
    workspaces,
)
from server.app import create_app
from server.settings import Settings
from tests.conftest import _empty, database_config

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
CONFIG = {
    # Per operation and driver; with the coverage phase this keeps the run well under a minute.
    "generation": {"max-examples": 15},
    "phases": {"stateful": {"enabled": False}},
    "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
}

WORKSPACE = "seed-workspace"
# Parameter or field name -> the seeded ids it may be given.
SEEDED: dict[str, list[str]] = {
    "workspace_id": [WORKSPACE],
    "agent_id": ["seed-agent"],
    "assignee_id": ["seed-agent"],
    "codebase_id": ["seed-codebase"],
    "conversation_id": ["seed-conversation"],
    "task_id": ["seed-task-a", "seed-task-b"],
    "depends_on_id": ["seed-task-a", "seed-task-b"],
    "background_task_id": ["seed-job"],
    "schedule_id": ["seed-schedule"],
    "note_id": ["seed-note"],
    "version_id": [],  # filled in by seed(): the database numbers versions
}


def _rows(ws: str) -> list[tuple[Callable[..., Any], str, Callable[[Any], Any]]]:
    """(get, id, create) of every seeded row, in the order they must be created."""
    return [
        (workspaces.get, ws, lambda conn: workspaces.create(conn, "seed", id=ws)),
        (
            agents.get,
            "seed-agent",
            lambda conn: agents.create(conn, ws, "Seed agent", "coder", id="seed-agent"),
        ),
        (
            codebases.get,
            "seed-codebase",
            lambda conn: codebases.create(conn, ws, "seed", id="seed-codebase"),
        ),
        (
            conversations.get,
            "seed-conversation",
            lambda conn: conversations.create(
                conn, ws, agent_id="seed-agent", id="seed-conversation"
            ),
        ),
        (tasks.get, "seed-task-a", lambda conn: tasks.create(conn, ws, "a", id="seed-task-a")),
        (tasks.get, "seed-task-b", lambda conn: tasks.create(conn, ws, "b", id="seed-task-b")),
        (
            background_tasks.get,
            "seed-job",
            lambda conn: background_tasks.enqueue(conn, "seed", workspace_id=ws, id="seed-job"),
        ),
        (
            schedules.get,
            "seed-schedule",
            lambda conn: schedules.create(conn, "seed", "0 * * * *", "seed", id="seed-schedule"),
        ),
    ]


def seed(db: Database) -> None:
    """One row of every entity under the ids of SEEDED, created where missing."""
    with db.begin() as conn:
        for get, row_id, create in _rows(WORKSPACE):
            try:
                get(conn, row_id)
            except NotFoundError:
                create(conn)
        if not conversations.list_messages(conn, "seed-conversation", limit=1).items:
            conversations.add_message(conn, "seed-conversation", "user", "hello")
        tasks.add_dependency(conn, "seed-task-a", "seed-task-b")  # again: no change
        if notes.find_note(conn, "seed-note", include_deleted=True) is None:
            notes.create_note(conn, workspace_id=WORKSPACE, note_id="seed-note", title="Seed")
            version_store.create_version(conn, "seed-note", label="seed")
        alive = notes.find_note(conn, "seed-note") is not None
        versions = version_store.list_versions(conn, "seed-note") if alive else []
        SEEDED["version_id"][:] = [str(version["id"]) for version in versions]


def _document() -> dict[str, Any]:
    # The document does not depend on the database: an app that never starts serves it.
    memory = Database(database_config_from_env({"COSCRIBE_DB_DRIVER": "memory"}))
    try:
        return TestClient(create_app(Settings(auth=False), memory)).get("/openapi.json").json()
    finally:
        memory.close()


schema = schemathesis.openapi.from_dict(_document(), config=schemathesis.Config.from_dict(CONFIG))


def _seeded(values: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    """``values`` with each seeded-id-named entry kept or swapped for a seeded id."""
    if not isinstance(values, dict):
        return st.just(values)
    choices = {
        name: st.sampled_from([value, *SEEDED[name]]) if SEEDED.get(name) else st.just(value)
        for name, value in values.items()
    }
    return st.fixed_dictionaries(choices)


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    return _seeded(path_parameters)


@schema.hook
def flatmap_query(context, query):
    return _seeded(query)


@schema.hook
def flatmap_body(context, body):
    return _seeded(body)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def api_db(request, tmp_path_factory):
    """One database per driver for the whole walk: state builds up as it would in use."""
    if request.param == "postgres":
        database = request.getfixturevalue("_postgres_db")
        _empty(database)
        yield database
        _empty(database)
        return
    path = tmp_path_factory.mktemp("api")
    database = Database(database_config("sqlite", request, path))
    migrate.upgrade(database)
    yield database
    database.close()


@pytest.fixture(scope="module")
def app(api_db):
    seed(api_db)
    application = create_app(Settings(auth=False), api_db)
    yield application
    # schemathesis starts the app's lifespan (rooms, persister, worker) on its first call and
    # keeps it for the rest of the process unless told to stop.
    asgi.shutdown_lifespans()


@schema.parametrize()
def test_api(case, app, api_db):
    if case.path == "/api/events":
        # A following stream never ends (schemathesis would wait out its read timeout on
        # every example); one that ends once caught up has the same headers and events.
        case.query = {**(case.query or {}), "follow": "false"}
    response = case.call(app=app)
    case.validate_response(response)
    if case.method == "DELETE" and response.status_code == 204:
        seed(api_db)
