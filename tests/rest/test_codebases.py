from tests.rest.conftest import assert_problem
from tests.rest.test_entities import every_item


def test_codebase_defaults(client, workspace):
    codebase = client.post(
        "/api/codebases", json={"workspace_id": workspace["id"], "name": "server"}
    ).json()
    assert codebase["default_branch"] == "main"
    assert [codebase["repo_url"], codebase["path"], codebase["language"]] == [None, None, None]
    assert codebase["description"] == ""


def test_codebases_by_language(client, workspace):
    ws = workspace["id"]
    for name, language in [
        ("web", "typescript"),
        ("server", "python"),
        ("cli", "python"),
        ("docs", None),
    ]:
        body = {"workspace_id": ws, "name": name, "language": language}
        assert client.post("/api/codebases", json=body).status_code == 201
    python = every_item(client, "/api/codebases", workspace_id=ws, language="python")
    assert sorted(codebase["name"] for codebase in python) == ["cli", "server"]
    assert len(every_item(client, "/api/codebases", workspace_id=ws)) == 4
    too_long = {"workspace_id": ws, "language": "x" * 65}
    assert_problem(client.get("/api/codebases", params=too_long), 422, "language")


def test_codebase_names_and_fields(client, workspace):
    body = {"workspace_id": workspace["id"], "name": "server", "path": "/src/server"}
    codebase = client.post("/api/codebases", json=body).json()
    assert_problem(client.post("/api/codebases", json=body), 409, "server")
    for bad in [{"default_branch": ""}, {"repo_url": "x" * 2001}, {"path": 7}]:
        assert_problem(client.patch(f"/api/codebases/{codebase['id']}", json=bad), 422)
    moved = client.patch(f"/api/codebases/{codebase['id']}", json={"path": None}).json()
    assert moved["path"] is None
    assert client.get(f"/api/codebases/{codebase['id']}").json() == moved
