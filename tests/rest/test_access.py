"""Access control over REST, route by route: every route of the API is called without a
token, with a token of another workspace, with a viewer's and with an editor's token."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from starlette.testclient import TestClient

from persistence import tokens
from server import rest
from server.app import create_app
from server.rest.access import OWNERS, READ_METHODS
from server.rest.api import path_parameters
from server.settings import Settings
from tests.rest.conftest import assert_problem

ENDPOINTS = rest.build().endpoints


@dataclass
class World:
    client: TestClient
    tokens: dict[str, str]  # role name -> token
    ids: dict[str, str]  # path parameter -> a row of workspace alpha

    def call(self, method: str, path: str, who: str | None, **kwargs):
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.client.request(method, path, headers=headers, **kwargs)


def _issue(db, role: str, workspace: str | None) -> str:
    with db.begin() as conn:
        return tokens.issue(conn, role, workspace=workspace).token


@pytest.fixture
def world(db):
    with TestClient(create_app(Settings(), db)) as client:
        admin = _issue(db, "admin", None)
        as_admin = {"Authorization": f"Bearer {admin}"}

        def make(path: str, body: dict) -> dict:
            response = client.post(path, json=body, headers=as_admin)
            assert response.status_code == 201, response.text
            return response.json()

        alpha = make("/api/workspaces", {"slug": "alpha"})["id"]
        beta = make("/api/workspaces", {"slug": "beta"})["id"]
        note = make("/api/notes", {"workspace_id": alpha, "text": "alpha's secret"})["id"]
        version = make(f"/api/notes/{note}/versions", {"label": "v"})["id"]
        agent = make("/api/agents", {"workspace_id": alpha, "name": "a", "role": "coder"})
        codebase = make("/api/codebases", {"workspace_id": alpha, "name": "repo"})
        conversation = make("/api/conversations", {"workspace_id": alpha})
        first = make("/api/tasks", {"workspace_id": alpha, "title": "first"})
        second = make("/api/tasks", {"workspace_id": alpha, "title": "second"})
        make(f"/api/tasks/{second['id']}/dependencies", {"depends_on_id": first["id"]})
        # Port 9 (discard) of a TEST-NET address: deliveries fail quietly in the background.
        hook = make(
            "/api/webhooks",
            {"workspace_id": alpha, "url": "http://192.0.2.1:9/hook", "secret": "s" * 16},
        )
        job = make("/api/background-tasks", {"workspace_id": alpha, "kind": "noop"})
        schedule = make(
            "/api/schedules",
            {"workspace_id": alpha, "name": "alpha", "cron": "0 * * * *", "job_kind": "noop"},
        )
        make("/api/notes", {"workspace_id": beta, "text": "beta's"})
        yield World(
            client,
            {
                "admin": admin,
                "alpha-editor": _issue(db, "editor", alpha),
                "alpha-viewer": _issue(db, "viewer", alpha),
                "beta-editor": _issue(db, "editor", beta),
                "beta-admin-home": _issue(db, "admin", beta),
            },
            {
                "workspace_id": alpha,
                "note_id": note,
                "version_id": str(version),
                "agent_id": agent["id"],
                "codebase_id": codebase["id"],
                "conversation_id": conversation["id"],
                "task_id": second["id"],
                "depends_on_id": first["id"],
                "background_task_id": job["id"],
                "schedule_id": schedule["id"],
                "token_id": tokens.parse(_issue(db, "viewer", alpha)),
                "webhook_id": hook["id"],
            },
        )


def _path(endpoint, ids: dict[str, str]) -> str:
    path = endpoint.path
    for name, value in ids.items():
        path = path.replace(f"{{{name}}}", value)
    assert "{" not in path, path
    return path


def _send(world: World, endpoint, who: str | None, ids: dict[str, str] | None = None, **kw):
    path = _path(endpoint, ids or world.ids)
    if endpoint.request_media_type and "content" not in kw:
        kw = {"content": b"\x00\x00", "headers_": {"content-type": endpoint.request_media_type}}
    elif endpoint.body is not None and "json" not in kw:
        kw = {"json": {}}
    if endpoint.query is not None and "q" in endpoint.query.model_fields:
        kw["params"] = {**kw.get("params", {}), "q": "secret"}  # the words of alpha's note
    if endpoint.media_type == "text/event-stream":
        # A stream that ends once it has sent what there is, instead of following forever.
        kw["params"] = {**kw.get("params", {}), "follow": "false"}
    headers = kw.pop("headers_", {})
    if who:
        headers["Authorization"] = f"Bearer {world.tokens[who]}"
    return world.client.request(endpoint.method, path, headers=headers, **kw)


def _label(endpoint) -> str:
    return f"{endpoint.method} {endpoint.path}"


@pytest.mark.parametrize("presented", [None, "not-a-token", "cs_0123456789abcdef_" + "A" * 43])
def test_every_route_refuses_a_missing_or_unknown_token(world, presented):
    for endpoint in ENDPOINTS:
        headers = {"Authorization": f"Bearer {presented}"} if presented else {}
        response = world.client.request(
            endpoint.method, _path(endpoint, world.ids), headers=headers, json={}
        )
        assert response.status_code == 401, (_label(endpoint), response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert_problem(response, 401, "token")


def test_a_token_of_another_workspace_reaches_no_row_of_this_one(world):
    checked = 0
    for endpoint in ENDPOINTS:
        if not set(path_parameters(endpoint.path)) & OWNERS.keys():
            continue
        checked += 1
        response = _send(world, endpoint, "beta-editor")
        assert response.status_code == 403, (_label(endpoint), response.text)
        assert "alpha's" not in response.text
    assert checked == sum("{" in endpoint.path for endpoint in ENDPOINTS) > 40


def test_a_refusal_does_not_tell_whether_the_row_exists(world):
    ghosts = {name: "ghost" for name in world.ids}
    ghosts["version_id"] = "1"
    for endpoint in ENDPOINTS:
        if "{" not in endpoint.path:
            continue
        real = _send(world, endpoint, "beta-editor")
        ghost = _send(world, endpoint, "beta-editor", ghosts)
        assert (real.status_code, real.json()) == (ghost.status_code, ghost.json()), _label(
            endpoint
        )


def test_collections_keep_a_scoped_token_in_its_workspace(world):
    alpha = world.ids["workspace_id"]
    for endpoint in ENDPOINTS:
        if "{" in endpoint.path or endpoint.access == "admin":
            continue
        if endpoint.method == "GET":
            fields = endpoint.query.model_fields if endpoint.query else {}
            if "workspace_id" in fields:
                named = _send(world, endpoint, "beta-editor", params={"workspace_id": alpha})
                assert_problem(named, 403, "workspace")
            listed = _send(world, endpoint, "beta-editor")
            assert listed.status_code == 200, (_label(endpoint), listed.text)
            assert alpha not in listed.text and "alpha" not in listed.text, _label(endpoint)
        else:
            body = {"workspace_id": alpha}
            response = _send(world, endpoint, "beta-editor", json=body)
            assert response.status_code == 403, (_label(endpoint), response.text)


def test_references_to_another_workspace_are_refused_alike(world):
    beta_task = world.call(
        "POST", "/api/tasks", "beta-editor", json={"title": "mine", "workspace_id": None}
    )
    # null is no way out of the workspace: it means "mine", like leaving it out
    assert beta_task.status_code == 201, beta_task.text
    mine = world.call("POST", "/api/tasks", "beta-editor", json={"title": "mine"}).json()
    assert mine["workspace_id"] == beta_task.json()["workspace_id"] != world.ids["workspace_id"]
    for foreign in (world.ids["depends_on_id"], "ghost"):
        response = world.call(
            "POST",
            f"/api/tasks/{mine['id']}/dependencies",
            "beta-editor",
            json={"depends_on_id": foreign},
        )
        assert_problem(response, 403, "this token does not give access to this task")
    listed = world.call("GET", "/api/tasks", "beta-editor", params={"assignee_id": "ghost"})
    assert_problem(listed, 403, "agent")


def test_a_viewer_reads_everything_and_changes_nothing(world):
    for endpoint in ENDPOINTS:
        response = _send(world, endpoint, "alpha-viewer")
        if endpoint.method in READ_METHODS and endpoint.access != "admin":
            assert response.status_code == 200, (_label(endpoint), response.text)
        else:
            assert_problem(response, 403)
    content = world.call("GET", f"/api/notes/{world.ids['note_id']}/content", "alpha-viewer")
    assert content.json()["content"] == {"content": "alpha's secret"}


def test_an_editor_writes_in_its_workspace_but_manages_nothing(world):
    note = world.call("POST", "/api/notes", "alpha-editor", json={"text": "by the editor"})
    assert note.status_code == 201 and note.json()["workspace_id"] == world.ids["workspace_id"]
    put = world.call(
        "PUT", f"/api/notes/{world.ids['note_id']}/text", "alpha-editor", json={"text": "edited"}
    )
    assert put.status_code == 200, put.text
    admin_only = [
        ("POST", "/api/workspaces", {"slug": "mine"}),
        ("PATCH", f"/api/workspaces/{world.ids['workspace_id']}", {"name": "x"}),
        ("DELETE", f"/api/workspaces/{world.ids['workspace_id']}", None),
        ("POST", "/api/schedules", {"name": "s", "cron": "* * * * *", "job_kind": "noop"}),
        ("POST", "/api/background-tasks", {"kind": "noop"}),
        ("POST", f"/api/background-tasks/{world.ids['background_task_id']}/cancel", {}),
    ]
    for method, path, body in admin_only:
        response = world.call(method, path, "alpha-editor", json=body)
        assert_problem(response, 403, "admin")
    own = world.call("GET", "/api/workspaces", "alpha-editor").json()["items"]
    assert [w["id"] for w in own] == [world.ids["workspace_id"]]


def test_an_admin_reaches_every_workspace_and_creates_in_its_home(world):
    listed = world.call("GET", "/api/workspaces", "beta-admin-home").json()["items"]
    assert {"alpha", "beta"} <= {w["slug"] for w in listed}
    alpha_note = world.call("GET", f"/api/notes/{world.ids['note_id']}", "beta-admin-home")
    assert alpha_note.status_code == 200
    created = world.call("POST", "/api/notes", "beta-admin-home", json={}).json()
    beta = next(w["id"] for w in listed if w["slug"] == "beta")
    assert created["workspace_id"] == beta


def test_a_revoked_token_is_refused_on_its_next_call(world, db):
    path = f"/api/notes/{world.ids['note_id']}"
    assert world.call("GET", path, "alpha-editor").status_code == 200
    with db.begin() as conn:
        tokens.revoke(conn, world.tokens["alpha-editor"])
    assert_problem(world.call("GET", path, "alpha-editor"), 401, "revoked")


def test_open_routes_need_no_token(world):
    assert world.client.get("/health").status_code == 200
    spec = world.client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for item in spec["paths"].values():
        for operation in item.values():
            assert {"401", "403"} <= operation["responses"].keys()


def test_cors_is_off_unless_configured(db):
    preflight = {
        "Origin": "https://elsewhere.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    with TestClient(create_app(Settings(), db)) as client:
        response = client.options("/api/notes", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
        plain = client.get("/health", headers={"Origin": "https://elsewhere.example"})
        assert "access-control-allow-origin" not in plain.headers
    settings = Settings(cors_origins="https://elsewhere.example")
    with TestClient(create_app(settings, db)) as client:
        response = client.options("/api/notes", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://elsewhere.example"
        other = client.options(
            "/api/notes", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers


def test_me_tells_a_token_its_role_and_workspace(world):
    alpha = world.ids["workspace_id"]
    viewer = world.call("GET", "/api/me", "alpha-viewer").json()
    assert viewer["role"] == "viewer" and viewer["workspace_id"] == alpha
    assert viewer["can_write"] is False and viewer["token_id"]
    editor = world.call("GET", "/api/me", "alpha-editor").json()
    assert (editor["role"], editor["can_write"]) == ("editor", True)
    admin = world.call("GET", "/api/me", "admin").json()
    assert (admin["role"], admin["workspace_id"]) == ("admin", None)


def test_a_workspace_slug_is_accepted_wherever_its_id_is(world):
    alpha = world.ids["workspace_id"]
    for who in ("admin", "alpha-editor", "alpha-viewer"):
        listed = world.call("GET", "/api/notes", who, params={"workspace_id": "alpha"})
        assert listed.status_code == 200, listed.text
        assert [n["workspace_id"] for n in listed.json()["items"]] == [alpha]
        got = world.call("GET", "/api/workspaces/alpha", who)
        assert got.status_code == 200 and got.json()["id"] == alpha, got.text
    created = world.call("POST", "/api/notes", "alpha-editor", json={"workspace_id": "alpha"})
    assert created.status_code == 201 and created.json()["workspace_id"] == alpha, created.text
    agent = {"workspace_id": "alpha", "name": "b", "role": "coder"}
    made = world.call("POST", "/api/agents", "alpha-editor", json=agent)
    assert made.status_code == 201 and made.json()["workspace_id"] == alpha, made.text
    renamed = world.call("PATCH", "/api/workspaces/alpha", "admin", json={"name": "Alpha"})
    assert renamed.status_code == 200 and renamed.json()["id"] == alpha, renamed.text
    # Another workspace's slug gets what its id gets, and an unknown one what an unknown id gets.
    for who, name, status in (
        ("beta-editor", "alpha", 403),
        ("alpha-editor", "beta", 403),
        ("alpha-editor", "nowhere", 403),
        ("admin", "nowhere", 404),
    ):
        response = world.call("GET", f"/api/workspaces/{name}", who)
        assert_problem(response, status)
        response = world.call("GET", "/api/notes", who, params={"workspace_id": name})
        assert response.status_code == status, (who, name, response.text)
