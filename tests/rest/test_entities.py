"""What every plain entity endpoint does the same way: CRUD, pagination, the workspace filter,
and bad input answered with a problem that leaves the stored data as it was.

Entity-specific behaviour (filters, dependencies, messages, cancel, cron) has its own module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

import pytest

from persistence.stores import agents, background_tasks, conversations, tasks
from server.rest import agents as agents_api
from server.rest import background_tasks as background_tasks_api
from server.rest import conversations as conversations_api
from server.rest import tasks as tasks_api
from tests.rest.conftest import assert_problem

JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Entity:
    path: str
    new: Callable[[str, int], dict[str, Any]]  # (workspace id, n) -> a valid create body
    change: dict[str, Any]  # a valid update
    scoped: bool = True  # the list requires workspace_id

    def __str__(self) -> str:
        return self.path.rsplit("/", 1)[-1]


ENTITIES = [
    Entity(
        "/api/agents",
        lambda ws, n: {"workspace_id": ws, "name": f"agent {n}", "role": "coder"},
        {"status": "busy", "model": "m-1"},
    ),
    Entity(
        "/api/codebases",
        lambda ws, n: {"workspace_id": ws, "name": f"repo-{n}", "repo_url": f"https://x/{n}"},
        {"language": "python", "default_branch": "trunk"},
    ),
    Entity(
        "/api/conversations",
        lambda ws, n: {"workspace_id": ws, "title": f"chat {n}"},
        {"status": "closed", "title": "renamed"},
    ),
    Entity(
        "/api/tasks",
        lambda ws, n: {"workspace_id": ws, "title": f"task {n}", "priority": n},
        {"status": "in_progress", "priority": -3},
    ),
    Entity(
        "/api/background-tasks",
        lambda ws, n: {"workspace_id": ws, "kind": "test-noop", "payload": {"n": n}},
        {"priority": 7, "payload": {"n": "changed"}},
        scoped=False,
    ),
    Entity(
        "/api/schedules",
        lambda ws, n: {"workspace_id": ws, "name": f"s{n}", "cron": "0 * * * *", "job_kind": "x"},
        {"cron": "30 2 * * 1-5", "timezone": "Europe/Paris"},
        scoped=False,
    ),
]
by_entity = pytest.mark.parametrize("entity", ENTITIES, ids=str)


def every_item(client, path: str, **params: Any) -> list[dict]:
    """All items of a list endpoint, walking its pages two at a time."""
    items: list[dict] = []
    cursor = None
    while True:
        page_params = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=page_params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def create(client, entity: Entity, workspace_id: str, n: int = 0) -> dict:
    response = client.post(entity.path, json=entity.new(workspace_id, n))
    assert response.status_code == 201, response.text
    return response.json()


@by_entity
def test_create_get_update_delete(client, workspace, entity):
    body = entity.new(workspace["id"], 1)
    created = create(client, entity, workspace["id"], 1)
    assert {name: created[name] for name in body} == body
    assert created["created_at"] == created["updated_at"]
    item = f"{entity.path}/{created['id']}"
    assert client.get(item).json() == created

    updated = client.patch(item, json=entity.change)
    assert updated.status_code == 200, updated.text
    assert {name: updated.json()[name] for name in entity.change} == entity.change
    assert at(updated.json()["updated_at"]) > at(created["updated_at"])
    assert client.get(item).json() == updated.json()
    unchanged = client.patch(item, json={})
    assert unchanged.status_code == 200 and unchanged.json() == updated.json()

    assert client.delete(item).status_code == 204
    assert_problem(client.get(item), 404, "not found")
    assert_problem(client.delete(item), 404, "not found")
    assert every_item(client, entity.path, workspace_id=workspace["id"]) == []


@by_entity
def test_chosen_id_and_clash(client, workspace, entity):
    body = {**entity.new(workspace["id"], 1), "id": "my-own-id"}
    assert client.post(entity.path, json=body).json()["id"] == "my-own-id"
    again = {**entity.new(workspace["id"], 2), "id": "my-own-id"}
    assert_problem(client.post(entity.path, json=again), 409, "already exists")
    assert len(every_item(client, entity.path, workspace_id=workspace["id"])) == 1


@by_entity
def test_pages_newest_first(client, workspace, entity):
    created = [create(client, entity, workspace["id"], n) for n in range(5)]
    items = every_item(client, entity.path, workspace_id=workspace["id"])
    assert [item["id"] for item in items] == [item["id"] for item in reversed(created)]
    first = client.get(entity.path, params={"workspace_id": workspace["id"], "limit": 5}).json()
    assert first["next_cursor"] is None and first["items"] == items
    assert_problem(
        client.get(entity.path, params={"workspace_id": workspace["id"], "limit": 0}), 422
    )
    assert_problem(
        client.get(entity.path, params={"workspace_id": workspace["id"], "limit": 501}), 422
    )
    bad_cursor = {"workspace_id": workspace["id"], "cursor": "not-a-cursor"}
    assert_problem(client.get(entity.path, params=bad_cursor), 422, "cursor")


@by_entity
def test_workspace_filter(client, workspace, entity):
    other = client.post("/api/workspaces", json={"slug": "other"}).json()
    mine = [create(client, entity, workspace["id"], n) for n in range(3)]
    theirs = [create(client, entity, other["id"], n + 10) for n in range(2)]
    assert {i["id"] for i in every_item(client, entity.path, workspace_id=workspace["id"])} == {
        i["id"] for i in mine
    }
    assert {i["id"] for i in every_item(client, entity.path, workspace_id=other["id"])} == {
        i["id"] for i in theirs
    }
    assert_problem(client.get(entity.path, params={"workspace_id": "nowhere"}), 404, "nowhere")
    assert_problem(client.get(entity.path, params={"workspace_id": "not an id"}), 422)
    if entity.scoped:
        assert_problem(client.get(entity.path), 422, "workspace_id")
    else:  # all of them (the server may have its own besides)
        everything = {item["id"] for item in every_item(client, entity.path)}
        assert {item["id"] for item in mine + theirs} <= everything
    # Deleting a workspace deletes what it owns.
    assert client.delete(f"/api/workspaces/{other['id']}").status_code == 204
    assert_problem(client.get(f"{entity.path}/{theirs[0]['id']}"), 404)


@by_entity
def test_bad_input_is_refused_and_changes_nothing(client, workspace, entity):
    kept = create(client, entity, workspace["id"], 1)
    item = f"{entity.path}/{kept['id']}"
    valid = entity.new(workspace["id"], 2)
    as_text = {"content-type": "text/plain"}

    refusals = [
        (client.post(entity.path, content=b"{}", headers=as_text), 415),
        (client.post(entity.path, content=b"{}"), 415),  # no content type at all
        (client.post(entity.path, content=b'{"name": ', headers=JSON), 400),
        (client.post(entity.path, content=b"\xff\xfe", headers=JSON), 400),
        (client.post(entity.path, json={**valid, "bogus": 1}), 422),
        (client.post(entity.path, json=[valid]), 422),
        (client.post(entity.path, json={**valid, "workspace_id": "missing"}), 404),
        (client.post(entity.path, json={**valid, "padding": "x" * (1 << 20)}), 413),
        (client.patch(item, content=b"{}", headers=as_text), 415),
        (client.patch(item, content=b"{", headers=JSON), 400),
        (client.patch(item, json={"bogus": 1}), 422),
        (client.patch(item, json={"workspace_id": "elsewhere"}), 422),  # set on create only
        (client.patch(item, json={"id": "new-id"}), 422),
        (client.patch(item, json={"created_at": "2020-01-01T00:00:00Z"}), 422),
        (client.patch(item, json={"padding": "x" * (1 << 20)}), 413),
        (client.patch(f"{entity.path}/missing", json=entity.change), 404),
        (client.get(f"{entity.path}/missing"), 404),
        (client.delete(f"{entity.path}/missing"), 404),
        (client.get(f"{entity.path}/not%20an%20id"), 422),
        (client.delete(f"{entity.path}/{'x' * 129}"), 422),
        (client.put(item, json=entity.change), 405),
    ]
    for response, status in refusals:
        assert_problem(response, status)
    assert client.get(item).json() == kept
    assert every_item(client, entity.path, workspace_id=workspace["id"]) == [kept]


def raw_post(client, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """POST through ASGI as it is, headers byte for byte (TestClient re-encodes them)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("testserver", 80),
        "client": ("testclient", 50000),
    }
    started: list[int] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            started.append(message["status"])

    client.portal.call(client.app, scope, receive, send)
    return started[0]


def test_a_content_length_that_is_not_a_number_is_not_trusted(client, workspace):
    # "²" (a latin-1 header byte) passes str.isdigit() but not int(): it used to be a 500.
    # The body is counted instead.
    headers = [(b"content-type", b"application/json"), (b"content-length", b"\xb2")]
    body = b'{"workspace_id": "%s", "name": "a", "role": "r"}' % workspace["id"].encode()
    assert raw_post(client, "/api/agents", headers, body) == 201
    big = b'{"padding": "%s"}' % (b"x" * (1 << 20))
    assert raw_post(client, "/api/agents", headers, big) == 413
    assert len(every_item(client, "/api/agents", workspace_id=workspace["id"])) == 1


@by_entity
def test_null_for_a_column_that_is_never_null_is_refused(client, workspace, entity):
    kept = create(client, entity, workspace["id"], 1)
    for name in entity.change:
        if kept[name] is not None:
            response = client.patch(f"{entity.path}/{kept['id']}", json={name: None})
            assert_problem(response, 422, name)
    assert client.get(f"{entity.path}/{kept['id']}").json() == kept


def test_status_enums_are_the_stores_own():
    assert get_args(agents_api.AgentStatus) == agents.STATUSES
    assert get_args(conversations_api.ConversationStatus) == conversations.STATUSES
    assert get_args(conversations_api.Role) == conversations.ROLES
    assert get_args(tasks_api.TaskStatus) == tasks.STATUSES
    assert get_args(background_tasks_api.JobStatus) == background_tasks.STATUSES


def test_openapi_document_is_true_to_the_models(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    task = schemas["Task"]["properties"]
    assert task["status"]["enum"] == list(tasks.STATUSES)
    assert task["completed_at"]["anyOf"] == [
        {"type": "string", "format": "date-time"},
        {"type": "null"},
    ]
    assert task["created_at"] == {"type": "string", "format": "date-time", "title": "Created At"}
    priority = schemas["TaskCreate"]["properties"]["priority"]
    assert (priority["minimum"], priority["maximum"]) == (-(2**31), 2**31 - 1)
    assert schemas["AgentCreate"]["additionalProperties"] is False
    assert "default" not in schemas["AgentUpdate"]["properties"]["name"]
    for entity in ENTITIES:
        collection = spec["paths"][entity.path]
        parameters = {p["name"]: p for p in collection["get"]["parameters"]}
        assert parameters["workspace_id"]["required"] is entity.scoped
        assert {"limit", "cursor"} <= set(parameters)
        assert {"201", "400", "404", "409", "413", "415", "422"} <= set(
            collection["post"]["responses"]
        )
    # Workers claim and complete jobs in-process; REST only queues, changes and cancels them.
    job_paths = [path for path in spec["paths"] if path.startswith("/api/background-tasks")]
    assert sorted(job_paths) == [
        "/api/background-tasks",
        "/api/background-tasks/{background_task_id}",
        "/api/background-tasks/{background_task_id}/cancel",
    ]
