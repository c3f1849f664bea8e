"""REST tests run in-process (Starlette's TestClient, lifespan included) on every driver."""

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings


@pytest.fixture
def client(db):
    """A TestClient over a fresh app on the `db` fixture's database (memory, SQLite, PostgreSQL)."""
    with TestClient(create_app(Settings(auth=False), db)) as test_client:
        yield test_client


@pytest.fixture
def workspace(client) -> dict:
    response = client.post("/api/workspaces", json={"slug": "team", "name": "Team"})
    assert response.status_code == 201, response.text
    return response.json()


def assert_problem(response, status: int, *words: str) -> dict:
    """The response is an application/problem+json document with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    for word in words:
        assert word in body["detail"], body
    return body
