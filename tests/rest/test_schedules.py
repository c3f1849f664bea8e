from datetime import datetime

from tests.rest.conftest import assert_problem
from tests.rest.test_entities import every_item

SCHEDULES = "/api/schedules"


def schedule(client, name: str, cron: str = "0 3 * * *", **fields) -> dict:
    response = client.post(
        SCHEDULES, json={"name": name, "cron": cron, "job_kind": "compact", **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_next_run_follows_cron_time_zone_and_enabled(client):
    nightly = schedule(client, "nightly", "0 3 * * *", timezone="Asia/Tokyo")
    assert nightly["timezone"] == "Asia/Tokyo" and nightly["enabled"] is True
    next_run = datetime.fromisoformat(nightly["next_run_at"])
    assert (next_run.hour, next_run.minute) == (18, 0)  # 03:00 in Tokyo is 18:00 UTC
    assert nightly["last_run_at"] is None and nightly["job_payload"] == {}
    item = f"{SCHEDULES}/{nightly['id']}"
    disabled = client.patch(item, json={"enabled": False}).json()
    assert disabled["next_run_at"] is None
    again = client.patch(item, json={"enabled": True, "cron": "15 * * * *"}).json()
    assert datetime.fromisoformat(again["next_run_at"]).minute == 15


def test_schedules_by_workspace_and_enabled(client, workspace):
    builtin = {s["name"] for s in every_item(client, SCHEDULES)}  # the server's own
    on = schedule(client, "on", workspace_id=workspace["id"])
    off = schedule(client, "off", enabled=False, workspace_id=workspace["id"])
    server = schedule(client, "server-wide")

    def names(**filters):
        listed = every_item(client, SCHEDULES, **filters)
        return sorted(s["name"] for s in listed if s["name"] not in builtin)

    assert names() == ["off", "on", "server-wide"]
    assert names(workspace_id=workspace["id"]) == ["off", "on"]
    assert names(enabled="true") == ["on", "server-wide"]
    assert names(enabled="false", workspace_id=workspace["id"]) == ["off"]
    assert_problem(client.get(SCHEDULES, params={"enabled": "maybe"}), 422, "enabled")
    assert {on["id"], off["id"], server["id"]} <= {s["id"] for s in every_item(client, SCHEDULES)}


def test_bad_cron_and_time_zone_change_nothing(client, workspace):
    kept = schedule(client, "nightly", workspace_id=workspace["id"])
    item = f"{SCHEDULES}/{kept['id']}"
    for cron, word in [
        ("* * *", "5 fields"),
        ("0 0 30 2 *", "cron"),  # February 30th never comes
        ("61 * * * *", "cron"),
        ("*/0 * * * *", "cron"),
        ("@daily", "cron"),
        ("0 0 * * * *", "5 fields"),
        ("0 0 L * *", "day-of-month"),
        ("", "cron"),
    ]:
        assert_problem(client.patch(item, json={"cron": cron}), 422, word)
        body = {"name": "new", "cron": cron, "job_kind": "x"}
        assert_problem(client.post(SCHEDULES, json=body), 422, word)
    for timezone in ["Mars/Olympus", "../etc/passwd", ""]:
        assert_problem(client.patch(item, json={"timezone": timezone}), 422, "timezone")
    assert_problem(client.patch(item, json={"enabled": "yes"}), 422, "enabled")
    assert_problem(client.patch(item, json={"next_run_at": None}), 422, "next_run_at")
    assert_problem(
        client.post(SCHEDULES, json={"name": "nightly", "cron": "* * * * *", "job_kind": "x"}),
        409,
        "nightly",
    )
    assert client.get(item).json() == kept
    assert every_item(client, SCHEDULES, workspace_id=workspace["id"]) == [kept]
    assert "new" not in {s["name"] for s in every_item(client, SCHEDULES)}
