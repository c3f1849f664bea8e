from tests.rest.conftest import assert_problem


def test_workspace_crud_and_pagination(client):
    created = [
        client.post("/api/workspaces", json={"slug": f"ws-{n}", "name": f"W{n}"}).json()
        for n in range(5)
    ]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/workspaces", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # "default" exists from the first start on (the README's first commands name it).
    assert sorted(seen) == sorted(["default", *(w["id"] for w in created)])
    first = created[0]["id"]
    renamed = client.patch(f"/api/workspaces/{first}", json={"name": "Renamed"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"
    assert client.delete(f"/api/workspaces/{first}").status_code == 204
    assert_problem(client.get(f"/api/workspaces/{first}"), 404, "not found")


def test_bad_input_gets_problems_and_changes_nothing(client, workspace):
    assert_problem(client.post("/api/workspaces", json={"slug": "team"}), 409, "already exists")
    assert_problem(client.post("/api/workspaces", json={"slug": "ok", "bogus": 1}), 422, "bogus")
    assert_problem(client.post("/api/workspaces", json={"slug": "No Spaces"}), 422, "slug")
    assert_problem(
        client.post("/api/workspaces", content=b"{", headers={"content-type": "application/json"}),
        400,
        "not valid JSON",
    )
    assert_problem(
        client.post("/api/workspaces", content=b"slug=x", headers={"content-type": "text/plain"}),
        415,
    )
    big = {"slug": "big", "description": "x" * 2_000_000}
    assert_problem(client.post("/api/workspaces", json=big), 413, "limit")
    assert_problem(client.patch("/api/workspaces/missing", json={"name": "x"}), 404)
    assert_problem(client.get("/api/workspaces", params={"limit": 0}), 422, "limit")
    items = client.get("/api/workspaces").json()["items"]
    assert [item["slug"] for item in items] == ["team", "default"]


def test_openapi_document_describes_the_api(client):
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert "/api/workspaces/{workspace_id}" in spec["paths"]
    operation = spec["paths"]["/api/workspaces"]["post"]
    assert "application/json" in operation["requestBody"]["content"]
    assert {"201", "409", "413", "415", "422"} <= set(operation["responses"])
