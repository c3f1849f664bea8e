import pytest

from tests.rest.conftest import assert_problem
from tests.rest.test_entities import JSON, every_item


@pytest.fixture
def agent(client, workspace) -> dict:
    body = {"workspace_id": workspace["id"], "name": "Ada", "role": "coder"}
    return client.post("/api/agents", json=body).json()


@pytest.fixture
def conversation(client, workspace, agent) -> dict:
    body = {"workspace_id": workspace["id"], "title": "Plan", "agent_id": agent["id"]}
    return client.post("/api/conversations", json=body).json()


def test_conversations_by_status_and_agent(client, workspace, agent, conversation):
    ws = workspace["id"]
    loose = client.post("/api/conversations", json={"workspace_id": ws}).json()
    assert (loose["title"], loose["status"], loose["agent_id"]) == ("", "open", None)
    client.patch(f"/api/conversations/{loose['id']}", json={"status": "archived"})

    def ids(**filters):
        return {
            c["id"] for c in every_item(client, "/api/conversations", workspace_id=ws, **filters)
        }

    assert ids(agent_id=agent["id"]) == {conversation["id"]}
    assert ids(status="archived") == {loose["id"]}
    assert ids(status="open", agent_id=agent["id"]) == {conversation["id"]}
    assert ids(status="closed") == set()
    assert_problem(
        client.get("/api/conversations", params={"workspace_id": ws, "agent_id": "nobody"}),
        404,
        "nobody",
    )


def test_agent_must_be_of_the_same_workspace(client, workspace, agent, conversation):
    other = client.post("/api/workspaces", json={"slug": "other"}).json()
    elsewhere = {"workspace_id": other["id"], "agent_id": agent["id"]}
    assert_problem(client.post("/api/conversations", json=elsewhere), 404, "not found in workspace")
    assert every_item(client, "/api/conversations", workspace_id=other["id"]) == []
    item = f"/api/conversations/{conversation['id']}"
    assert_problem(client.patch(item, json={"agent_id": "nobody"}), 404, "nobody")
    assert client.get(item).json() == conversation
    # Deleting the agent keeps the conversation, without an agent.
    assert client.delete(f"/api/agents/{agent['id']}").status_code == 204
    assert client.get(item).json()["agent_id"] is None


def test_messages_are_numbered_and_paged(client, conversation):
    messages = f"/api/conversations/{conversation['id']}/messages"
    assert client.get(messages).json() == {"items": [], "next_cursor": None}
    roles = ["system", "user", "assistant", "tool", "user"]
    added = []
    for n, role in enumerate(roles):
        body = {"role": role, "content": f"message {n}", "metadata": {"n": n}}
        if role == "assistant":
            body["author"] = "Ada"
        response = client.post(messages, json=body)
        assert response.status_code == 201, response.text
        added.append(response.json())
    assert [m["seq"] for m in added] == [1, 2, 3, 4, 5]
    assert added[2]["author"] == "Ada" and added[0]["author"] is None
    assert every_item(client, messages) == added  # oldest first
    first = client.get(messages, params={"limit": 3}).json()
    assert [m["seq"] for m in first["items"]] == [1, 2, 3]
    rest = client.get(messages, params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [m["seq"] for m in rest["items"]] == [4, 5] and rest["next_cursor"] is None
    # A message moves the conversation's updated_at.
    touched = client.get(f"/api/conversations/{conversation['id']}").json()
    assert touched["updated_at"] == added[-1]["created_at"]


def test_bad_messages_change_nothing(client, conversation):
    messages = f"/api/conversations/{conversation['id']}/messages"
    kept = client.post(messages, json={"role": "user", "content": "hello"}).json()
    for response, status in [
        (client.post(messages, json={"role": "robot", "content": "x"}), 422),
        (client.post(messages, json={"content": "no role"}), 422),
        (client.post(messages, json={"role": "user", "content": "x", "seq": 9}), 422),
        (client.post(messages, json={"role": "user", "content": "a\x00b"}), 422),
        (client.post(messages, json={"role": "user", "content": "x" * (1 << 20)}), 413),
        (client.post(messages, content=b"hello", headers={"content-type": "text/plain"}), 415),
        (client.post(messages, content=b"{", headers=JSON), 400),
        (
            client.post(
                "/api/conversations/missing/messages", json={"role": "user", "content": "x"}
            ),
            404,
        ),
        (client.get("/api/conversations/missing/messages"), 404),
        (client.get("/api/conversations/bad%20id/messages"), 422),
        (client.get(messages, params={"cursor": "nope"}), 422),
    ]:
        assert_problem(response, status)
    assert every_item(client, messages) == [kept]
    # Deleting the conversation deletes its messages.
    assert client.delete(f"/api/conversations/{conversation['id']}").status_code == 204
    assert_problem(client.get(messages), 404)
