from datetime import UTC, datetime, timedelta

import pytest

from persistence.stores import background_tasks
from tests.rest.conftest import assert_problem
from tests.rest.test_entities import JSON, every_item

JOBS = "/api/background-tasks"
# No worker handles this kind, so the app's own worker leaves these jobs queued.
KIND = "test-noop"


@pytest.fixture
def job(client) -> dict:
    response = client.post(JOBS, json={"kind": KIND, "payload": {"note": "n1"}})
    assert response.status_code == 201, response.text
    return response.json()


def test_enqueue_defaults(client, job):
    assert job["status"] == "queued"
    assert (job["attempts"], job["max_attempts"], job["priority"]) == (0, 5, 0)
    assert job["run_after"] == job["created_at"]
    assert job["workspace_id"] is job["schedule_id"] is job["locked_by"] is None
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    delayed = client.post(JOBS, json={"kind": "prune", "run_after": later, "max_attempts": 1})
    assert datetime.fromisoformat(delayed.json()["run_after"]) == datetime.fromisoformat(later)


def test_jobs_by_workspace_status_and_kind(client, workspace, job):
    ws = workspace["id"]
    mine = client.post(JOBS, json={"kind": "export", "workspace_id": ws}).json()
    client.post(f"{JOBS}/{mine['id']}/cancel", json={})

    def ids(**filters):
        return {j["id"] for j in every_item(client, JOBS, **filters)}

    assert {job["id"], mine["id"]} <= ids()  # the server may queue its own jobs too
    assert ids(workspace_id=ws) == {mine["id"]}
    assert ids(status="queued", kind=KIND) == {job["id"]}
    assert ids(status="cancelled", kind="export") == {mine["id"]}
    assert ids(kind=KIND, workspace_id=ws) == set()
    assert_problem(client.get(JOBS, params={"status": "sleeping"}), 422, "status")
    assert_problem(client.get(JOBS, params={"schedule_id": "ghost"}), 404, "ghost")


def test_only_a_queued_job_changes(client, db, job):
    item = f"{JOBS}/{job['id']}"
    changed = client.patch(item, json={"priority": 9, "max_attempts": 2}).json()
    assert (changed["priority"], changed["max_attempts"]) == (9, 2)
    # A worker (in-process, never over REST) takes it.
    with db.begin() as conn:
        claimed = background_tasks.claim(conn, "worker-1", kinds=[KIND])
    assert claimed["id"] == job["id"]
    running = client.get(item).json()
    assert (running["status"], running["locked_by"], running["attempts"]) == (
        "running",
        "worker-1",
        1,
    )
    assert_problem(client.patch(item, json={"priority": 1}), 409, "only a queued one")
    assert client.get(item).json() == running
    cancelled = client.post(f"{item}/cancel", json={"reason": "not needed"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["error"] == "not needed"
    assert cancelled.json()["finished_at"] is not None
    assert_problem(client.post(f"{item}/cancel", json={}), 409, "already cancelled")
    assert_problem(client.patch(item, json={"payload": {}}), 409)
    assert client.get(item).json() == cancelled.json()


def test_refused_job_changes_leave_it_as_it_was(client, job):
    item = f"{JOBS}/{job['id']}"
    for response, status in [
        (client.patch(item, json={"status": "succeeded"}), 422),
        (client.patch(item, json={"kind": "other"}), 422),
        (client.patch(item, json={"attempts": 0}), 422),
        (client.patch(item, json={"max_attempts": 0}), 422),
        (client.patch(item, json={"max_attempts": True}), 422),
        (client.patch(item, json={"run_after": "2030-01-01T00:00:00"}), 422),  # no time zone
        (client.patch(item, json={"run_after": None}), 422),
        (client.patch(item, json={"payload": {"deep": [[[[[[[[]]]]]]]] * 2}}), 200),
        (client.post(f"{item}/cancel"), 415),  # the body may be {} but not missing
        (client.post(f"{item}/cancel", json={"reason": "x", "force": True}), 422),
        (client.post(f"{item}/cancel", content=b"{", headers=JSON), 400),
        (client.post(f"{JOBS}/ghost/cancel", json={}), 404),
        (client.post(JOBS, json={"kind": ""}), 422),
        (client.post(JOBS, json={"kind": "x", "status": "running"}), 422),
        (client.post(JOBS, json={"kind": "x", "schedule_id": "s"}), 422),
        (client.post(JOBS, json={"kind": "x", "payload": "text"}), 422),
        (client.post(JOBS, json={"kind": "x", "run_after": "0001-01-01T00:00:00+01:00"}), 422),
    ]:
        if status == 200:
            assert response.status_code == 200, response.text
            job = response.json()
        else:
            assert_problem(response, status)
    assert client.get(item).json() == job
    assert [j["id"] for j in every_item(client, JOBS, kind=KIND)] == [job["id"]]


def test_workers_are_not_on_rest(client, job):
    for action in ("claim", "complete", "fail", "heartbeat"):
        response = client.post(f"{JOBS}/{job['id']}/{action}", json={"worker_id": "w"})
        assert_problem(response, 404)
    assert client.get(f"{JOBS}/{job['id']}").json() == job
