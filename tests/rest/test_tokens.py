"""Access tokens over REST: admins issue, list and revoke them; the tokens work at once and
stop working once revoked; nobody else may manage them."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from persistence import tokens
from server.app import create_app
from server.settings import Settings
from tests.rest.conftest import assert_problem


@pytest.fixture
def http(db):
    with TestClient(create_app(Settings(), db)) as client:
        with db.begin() as conn:
            admin = tokens.issue(conn, "admin").token
        client.headers["Authorization"] = f"Bearer {admin}"
        yield client


def as_token(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_admin_issues_a_share_token_lists_it_and_revokes_it(http):
    team = http.post("/api/workspaces", json={"slug": "team"}).json()["id"]
    made = http.post(
        "/api/tokens", json={"role": "editor", "workspace_id": team, "name": "for Ann"}
    )
    assert made.status_code == 201, made.text
    issued = made.json()
    assert issued["token"].startswith(f"cs_{issued['id']}_")
    assert (issued["role"], issued["workspace_id"], issued["name"]) == ("editor", team, "for Ann")
    assert "secret_hash" not in issued

    # The new token works at once, in its workspace only.
    note = http.post("/api/notes", json={"workspace_id": team, "text": "hi"}).json()
    assert (
        http.get(f"/api/notes/{note['id']}", headers=as_token(issued["token"])).status_code == 200
    )
    assert_problem(http.get("/api/tokens", headers=as_token(issued["token"])), 403, "admin")

    listed = http.get("/api/tokens", params={"workspace_id": team}).json()["items"]
    assert [t["id"] for t in listed] == [issued["id"]]
    assert all("token" not in t and "secret_hash" not in t for t in listed)

    revoked = http.delete(f"/api/tokens/{issued['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert_problem(
        http.get(f"/api/notes/{note['id']}", headers=as_token(issued["token"])), 401, "revoked"
    )
    assert http.get("/api/tokens", params={"workspace_id": team}).json()["items"] == []
    everything = http.get(
        "/api/tokens", params={"workspace_id": team, "include_inactive": "true"}
    ).json()["items"]
    assert [t["id"] for t in everything] == [issued["id"]]


def test_bad_token_requests_are_problems(http):
    assert_problem(http.post("/api/tokens", json={"role": "editor"}), 422, "workspace")
    assert_problem(http.post("/api/tokens", json={"role": "owner", "workspace_id": "x"}), 422)
    assert_problem(
        http.post("/api/tokens", json={"role": "viewer", "workspace_id": "nowhere"}), 404
    )
    assert_problem(http.delete("/api/tokens/0123456789abcdef"), 404)


def test_editors_and_viewers_manage_no_tokens(http, db):
    team = http.post("/api/workspaces", json={"slug": "team"}).json()["id"]
    with db.begin() as conn:
        editor = tokens.issue(conn, "editor", workspace=team).token
    for method, path, body in [
        ("GET", "/api/tokens", None),
        ("POST", "/api/tokens", {"role": "editor", "workspace_id": team}),
        ("DELETE", f"/api/tokens/{tokens.parse(editor)}", None),
    ]:
        response = http.request(method, path, json=body, headers=as_token(editor))
        assert_problem(response, 403)


def test_a_restore_is_labelled_with_the_name_of_the_token_that_made_it(http, db):
    team = http.post("/api/workspaces", json={"slug": "team"}).json()["id"]
    with db.begin() as conn:
        agent = tokens.issue(conn, "editor", workspace=team, name="agent-7").token
    note = http.post("/api/notes", json={"workspace_id": team, "text": "first"}).json()["id"]
    first = http.post(f"/api/notes/{note}/versions", json={}).json()["id"]
    http.put(f"/api/notes/{note}/text", json={"text": "second"})
    restored = http.post(f"/api/notes/{note}/versions/{first}/restore", headers=as_token(agent))
    assert restored.json()["label"] == f"restored version {first} by agent-7"
    labels = [v["label"] for v in http.get(f"/api/notes/{note}/versions").json()["items"]]
    assert labels[:2] == [
        f"restored version {first} by agent-7",
        f"before restoring version {first} by agent-7",
    ]
