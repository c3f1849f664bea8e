from tests.rest.conftest import assert_problem
from tests.rest.test_entities import every_item


def test_agent_defaults_and_heartbeat(client, workspace):
    body = {"workspace_id": workspace["id"], "name": "Ada", "role": "reviewer"}
    agent = client.post("/api/agents", json=body).json()
    assert (agent["status"], agent["model"], agent["config"], agent["last_seen_at"]) == (
        "idle",
        None,
        {},
        None,
    )
    seen = client.patch(
        f"/api/agents/{agent['id']}", json={"last_seen_at": "2030-01-02T03:04:05+02:00"}
    )
    assert seen.json()["last_seen_at"] == "2030-01-02T01:04:05Z"
    cleared = client.patch(f"/api/agents/{agent['id']}", json={"last_seen_at": None, "model": None})
    assert cleared.json()["last_seen_at"] is None


def test_agents_by_status_and_role(client, workspace):
    ws = workspace["id"]
    for name, role, status in [
        ("a", "coder", "idle"),
        ("b", "coder", "busy"),
        ("c", "planner", "busy"),
    ]:
        body = {"workspace_id": ws, "name": name, "role": role, "status": status}
        assert client.post("/api/agents", json=body).status_code == 201

    def names(**filters):
        return sorted(
            agent["name"] for agent in every_item(client, "/api/agents", workspace_id=ws, **filters)
        )

    assert names(status="busy") == ["b", "c"]
    assert names(role="coder") == ["a", "b"]
    assert names(status="busy", role="coder") == ["b"]
    assert names(status="offline") == []
    assert_problem(client.get("/api/agents", params={"workspace_id": ws, "status": "asleep"}), 422)


def test_agent_names_are_unique_per_workspace(client, workspace):
    body = {"workspace_id": workspace["id"], "name": "Ada", "role": "coder"}
    first = client.post("/api/agents", json=body).json()
    assert_problem(client.post("/api/agents", json=body), 409, "already exists")
    other = client.post("/api/workspaces", json={"slug": "other"}).json()
    assert client.post("/api/agents", json={**body, "workspace_id": other["id"]}).status_code == 201
    second = client.post("/api/agents", json={**body, "name": "Bob"}).json()
    assert_problem(client.patch(f"/api/agents/{second['id']}", json={"name": "Ada"}), 409, "Ada")
    assert client.get(f"/api/agents/{second['id']}").json() == second
    assert client.get(f"/api/agents/{first['id']}").json() == first


def test_agent_fields_are_checked(client, workspace):
    ok = {"workspace_id": workspace["id"], "name": "Ada", "role": "coder"}
    for bad, word in [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "a\x00b"}, "NUL"),
        ({"role": "x" * 65}, "role"),
        ({"status": "asleep"}, "status"),
        ({"config": []}, "config"),
        ({"name": 5}, "name"),
    ]:
        assert_problem(client.post("/api/agents", json={**ok, **bad}), 422, word)
    agent = client.post("/api/agents", json=ok).json()
    naive = {"last_seen_at": "2030-01-02T03:04:05"}
    assert_problem(client.patch(f"/api/agents/{agent['id']}", json=naive), 422, "last_seen_at")
    as_number = {"last_seen_at": 1_900_000_000}
    assert_problem(client.patch(f"/api/agents/{agent['id']}", json=as_number), 422, "last_seen_at")
    assert client.get(f"/api/agents/{agent['id']}").json() == agent
