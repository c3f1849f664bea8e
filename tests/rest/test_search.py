"""GET /api/search in-process on every driver: scoped to the token's workspace, the index
follows REST edits, renames and deletes, and bad queries get a clear 4xx, never a 500."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from persistence import tokens
from server import indexer
from server.app import create_app
from server.services import services
from server.settings import Settings
from tests.rest.conftest import assert_problem

DELAY_MS = 50


def wait_found(client, query: str, expected: set[str], headers=None, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/api/search", params={"q": query}, headers=headers or {})
        assert response.status_code == 200, response.text
        found = {item["note_id"] for item in response.json()["items"]}
        if found == expected:
            return response.json()
        assert time.monotonic() < deadline, (query, found, expected)
        time.sleep(0.02)


@pytest.fixture
def world(db):
    settings = Settings(search_index_delay_ms=DELAY_MS)
    with TestClient(create_app(settings, db)) as client:
        with db.begin() as conn:
            admin = tokens.issue(conn, "admin", workspace=None).token
        client.headers["Authorization"] = f"Bearer {admin}"
        for slug in ("alpha", "beta"):
            assert (
                client.post("/api/workspaces", json={"id": slug, "slug": slug}).status_code == 201
            )
        with db.begin() as conn:
            viewer = tokens.issue(conn, "viewer", workspace="alpha").token
        yield client, {"Authorization": f"Bearer {viewer}"}


def test_search_follows_edits_renames_and_deletes(world):
    client, _ = world
    note = client.post(
        "/api/notes", json={"workspace_id": "alpha", "id": "n1", "text": "first draft"}
    ).json()
    wait_found(client, "draft", {note["id"]})
    started = time.monotonic()
    client.put("/api/notes/n1/text", json={"text": "Résumé of the Zürich meeting"})
    wait_found(client, "zurich", {"n1"})
    assert time.monotonic() - started < 5
    wait_found(client, "draft", set())
    client.patch("/api/notes/n1", json={"title": "Quarterly planning"})
    body = wait_found(client, "quarterly", {"n1"})
    assert body["items"][0]["title_highlights"] == [[0, 9]]
    client.delete("/api/notes/n1")
    wait_found(client, "zurich", set())
    client.post("/api/notes/n1/undelete")
    wait_found(client, "zurich", {"n1"})


def test_notes_due_together_are_indexed_a_batch_at_a_time(world, monkeypatch):
    client, _ = world
    monkeypatch.setattr(indexer, "BATCH", 2)
    running = services(client.app).indexer
    # Long enough for all five notes to fall due within one ride-along window (delay / 4).
    running.delay_s = running.max_delay_s = 1.0
    stats = running.stats
    before = stats.batches
    ids = {f"b{i}" for i in range(5)}
    for note_id in sorted(ids):
        body = {"workspace_id": "alpha", "id": note_id, "text": f"batched {note_id}"}
        assert client.post("/api/notes", json=body).status_code == 201
    wait_found(client, "batched", ids)
    # Five notes due together, at most two a transaction: three batches (one without BATCH).
    assert stats.batches - before == 3, stats


def test_a_token_finds_only_its_workspace(world):
    client, viewer = world
    client.post("/api/notes", json={"workspace_id": "alpha", "id": "a", "text": "shared word"})
    client.post("/api/notes", json={"workspace_id": "beta", "id": "b", "text": "shared word"})
    wait_found(client, "shared", {"a", "b"})  # an admin: every workspace
    wait_found(client, "shared", {"a"}, headers=viewer)
    named = client.get(
        "/api/search", params={"q": "shared", "workspace_id": "beta"}, headers=viewer
    )
    assert_problem(named, 403, "workspace")
    only = client.get("/api/search", params={"q": "shared", "workspace_id": "beta"})
    assert [item["note_id"] for item in only.json()["items"]] == ["b"]


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ("", 422, "at least 1 character"),
        ("   ", 422, "empty"),
        ('""', 422, "no words"),
        ("!!! ??? ---", 422, "no words"),
        ("x" * 1001, 422, "at most 1000"),
        (" ".join(["w"] * 33), 422, "33 words"),
    ],
)
def test_bad_queries_get_a_clear_4xx(world, query, status, words):
    client, _ = world
    assert_problem(client.get("/api/search", params={"q": query}), status, words)


def test_a_10kb_query_is_refused_with_a_4xx(world):
    client, _ = world
    response = client.get("/api/search", params={"q": "ä" * 10_240})
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "query",
    ['cafe OR "', "NEAR(a b)", "title:x ^y z*", '"unterminated', "a' OR 1=1 --", "()&|!:*<->"],
)
def test_query_syntax_is_never_a_server_error(world, query):
    client, _ = world
    client.post("/api/notes", json={"workspace_id": "alpha", "text": "a cafe near the title"})
    response = client.get("/api/search", params={"q": query})
    assert response.status_code in (200, 422), response.text


def test_missing_q_and_a_forged_cursor(world):
    client, _ = world
    assert_problem(client.get("/api/search"), 422, "q")
    assert_problem(client.get("/api/search", params={"q": "x", "cursor": "AAAA"}), 422, "cursor")


def test_search_follows_a_version_restore_and_compaction(world, db):
    from persistence import compaction

    client, _ = world
    client.post("/api/notes", json={"workspace_id": "alpha", "id": "v", "text": "original wording"})
    version = client.post("/api/notes/v/versions", json={"label": "first"}).json()
    client.put("/api/notes/v/text", json={"text": "rewritten entirely"})
    wait_found(client, "original", set())
    compaction.compact_note(db, "v")
    wait_found(client, "rewritten", {"v"})
    restored = client.post(f"/api/notes/v/versions/{version['id']}/restore")
    assert restored.status_code == 201, restored.text
    wait_found(client, "original", {"v"})
    wait_found(client, "rewritten", set())
