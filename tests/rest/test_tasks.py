import pytest

from tests.rest.conftest import assert_problem
from tests.rest.test_entities import JSON, every_item


@pytest.fixture
def new_task(client, workspace):
    def make(title: str, workspace_id: str | None = None, **fields) -> dict:
        body = {"workspace_id": workspace_id or workspace["id"], "title": title, **fields}
        response = client.post("/api/tasks", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return make


def dependencies(client, task: dict) -> dict:
    response = client.get(f"/api/tasks/{task['id']}/dependencies")
    assert response.status_code == 200, response.text
    listed = response.json()
    return {side: [t["title"] for t in listed[side]] for side in ("depends_on", "dependents")}


def depend(client, task: dict, on: dict):
    return client.post(f"/api/tasks/{task['id']}/dependencies", json={"depends_on_id": on["id"]})


def test_tasks_by_status_assignee_and_codebase(client, workspace, new_task):
    ws = workspace["id"]
    agent = client.post("/api/agents", json={"workspace_id": ws, "name": "A", "role": "c"}).json()
    repo = client.post("/api/codebases", json={"workspace_id": ws, "name": "repo"}).json()
    new_task("write", assignee_id=agent["id"], codebase_id=repo["id"])
    new_task("review", assignee_id=agent["id"], status="blocked")
    new_task("ship", codebase_id=repo["id"], status="done")

    def titles(**filters):
        return sorted(
            t["title"] for t in every_item(client, "/api/tasks", workspace_id=ws, **filters)
        )

    assert titles(assignee_id=agent["id"]) == ["review", "write"]
    assert titles(codebase_id=repo["id"]) == ["ship", "write"]
    assert titles(status="blocked") == ["review"]
    assert titles(status="todo", codebase_id=repo["id"]) == ["write"]
    assert_problem(client.get("/api/tasks", params={"workspace_id": ws, "status": "later"}), 422)
    assert_problem(
        client.get("/api/tasks", params={"workspace_id": ws, "assignee_id": "ghost"}), 404, "ghost"
    )


def test_completed_at_follows_done(client, new_task):
    task = new_task("ship")
    assert task["completed_at"] is None
    done = client.patch(f"/api/tasks/{task['id']}", json={"status": "done"}).json()
    assert done["completed_at"] == done["updated_at"]
    reopened = client.patch(f"/api/tasks/{task['id']}", json={"status": "todo"}).json()
    assert reopened["completed_at"] is None


def test_references_must_exist_in_the_workspace(client, workspace, new_task):
    other = client.post("/api/workspaces", json={"slug": "other"}).json()
    foreign = client.post(
        "/api/agents", json={"workspace_id": other["id"], "name": "A", "role": "c"}
    ).json()
    task = new_task("write")
    item = f"/api/tasks/{task['id']}"
    assert_problem(client.patch(item, json={"assignee_id": foreign["id"]}), 404, "not found in")
    assert_problem(client.patch(item, json={"codebase_id": "nope"}), 404, "codebase")
    assert_problem(client.patch(item, json={"note_id": "nope"}), 404, "note")
    assert_problem(client.patch(item, json={"priority": 2**31}), 422, "priority")
    assert_problem(client.patch(item, json={"priority": "1"}), 422, "priority")
    assert_problem(client.patch(item, json={"priority": True}), 422, "priority")
    assert_problem(client.patch(item, json={"priority": 1.5}), 422, "priority")
    assert client.get(item).json() == task
    assert client.patch(item, json={"priority": 2.0}).json()["priority"] == 2


def test_dependencies_both_ways(client, new_task):
    design, build, test = new_task("design"), new_task("build"), new_task("test")
    assert depend(client, build, design).status_code == 201
    added = depend(client, test, build)
    assert added.status_code == 201
    assert added.json() == {"task_id": test["id"], "depends_on_id": build["id"]}
    assert depend(client, test, build).status_code == 201  # again: no change
    assert dependencies(client, build) == {"depends_on": ["design"], "dependents": ["test"]}
    assert dependencies(client, design) == {"depends_on": [], "dependents": ["build"]}
    assert dependencies(client, test) == {"depends_on": ["build"], "dependents": []}

    edge = f"/api/tasks/{test['id']}/dependencies/{build['id']}"
    assert client.delete(edge).status_code == 204
    assert_problem(client.delete(edge), 404, "does not depend")
    assert dependencies(client, build) == {"depends_on": ["design"], "dependents": []}
    # Deleting a task removes its edges.
    assert client.delete(f"/api/tasks/{design['id']}").status_code == 204
    assert dependencies(client, build) == {"depends_on": [], "dependents": []}


def test_refused_dependencies_change_nothing(client, workspace, new_task):
    a, b, c = new_task("a"), new_task("b"), new_task("c")
    depend(client, a, b)
    depend(client, b, c)
    other = client.post("/api/workspaces", json={"slug": "other"}).json()
    foreign = new_task("foreign", workspace_id=other["id"])
    before = {t["title"]: dependencies(client, t) for t in (a, b, c, foreign)}

    cycle = assert_problem(depend(client, c, a), 409, "cycle")
    assert cycle["detail"].endswith(f"{c['id']} -> {a['id']} -> {b['id']} -> {c['id']}")
    assert_problem(depend(client, b, a), 409, "cycle")
    assert_problem(depend(client, a, a), 422, "itself")
    assert_problem(depend(client, a, foreign), 422, "another workspace")
    assert_problem(depend(client, a, {"id": "ghost"}), 404, "ghost")
    ghost = client.post("/api/tasks/ghost/dependencies", json={"depends_on_id": a["id"]})
    assert_problem(ghost, 404, "ghost")
    path = f"/api/tasks/{a['id']}/dependencies"
    for response, status in [
        (client.post(path, json={"depends_on_id": "not an id"}), 422),
        (client.post(path, json={"depends_on_id": b["id"], "kind": "hard"}), 422),
        (client.post(path, json={}), 422),
        (client.post(path, content=b"{", headers=JSON), 400),
        (client.post(path, content=b"x", headers={"content-type": "text/plain"}), 415),
        (client.post(path, json={"depends_on_id": "x" * (1 << 20)}), 413),
        (client.get("/api/tasks/ghost/dependencies"), 404),
        (client.delete(f"{path}/ghost"), 404),
        (client.delete(f"{path}/bad%20id"), 422),
    ]:
        assert_problem(response, status)
    assert {t["title"]: dependencies(client, t) for t in (a, b, c, foreign)} == before
