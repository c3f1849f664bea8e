"""/metrics on a real server: scraped after real websocket traffic and REST calls, the numbers
move; only an admin token (or the loopback metrics port) gets them."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.live_server import LiveServer, run_cli
from tests.processes import free_port
from tests.server.test_cli import assert_one_line_error
from tests.yclient import YClient, eventually

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
LINK = re.compile(r"/#token=(cs_[0-9a-f]{16}_[A-Za-z0-9_-]{43})")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(scraped, name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_with_real_traffic_and_need_an_admin_token(tmp_path):
    metrics_port = free_port()
    env = {
        "COSCRIBE_SQLITE_PATH": str(tmp_path / "m.sqlite"),
        "COSCRIBE_AUTH": "true",
        "COSCRIBE_METRICS_PORT": str(metrics_port),
        "COSCRIBE_FLUSH_WINDOW_MS": "5",
    }
    with LiveServer(env, tmp_path) as server:
        admin = LINK.search(server.log()).group(1)
        created = run_cli(
            ["token", "create", "--role", "editor", "--workspace", "default"], env, tmp_path
        )
        editor = created.stdout.strip()
        as_admin = {"Authorization": f"Bearer {admin}"}

        def scrape() -> dict:
            response = httpx.get(f"{server.url}/metrics", headers=as_admin)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/plain")
            return samples(response.text)

        before = scrape()
        assert value(before, "coscribe_websockets") == 0
        assert value(before, "coscribe_jobs", state="queued") >= 0
        assert ("coscribe_jobs", (("state", "running"),)) in before

        # Who may read them.
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        refused = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {editor}"})
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/problem+json")
        bogus = {"Authorization": "Bearer cs_0123456789abcdef_" + "A" * 43}
        assert httpx.get(f"{server.url}/api/notes", headers=bogus).status_code == 401

        # Real traffic: two editors typing into one note, and REST calls.
        writers = [await YClient(server.url, f"metered?token={editor}").connect() for _ in range(2)]
        await asyncio.wait_for(asyncio.gather(*(w.synced.wait() for w in writers)), 10)
        for n in range(20):
            writers[n % 2].text.insert(0, f"<{n}>")
            await asyncio.sleep(0.01)
        await eventually(lambda: "<19>" in str(writers[0].text) and "<0>" in str(writers[1].text))
        edited = httpx.put(
            f"{server.url}/api/notes/metered/text", headers=as_admin, json={"text": "by REST"}
        )
        assert edited.status_code == 200, edited.text
        assert (
            httpx.get(f"{server.url}/api/notes/missing-note", headers=as_admin).status_code == 404
        )
        await eventually(lambda: str(writers[0].text) == "by REST")

        during = scrape()
        assert value(during, "coscribe_websockets") == 2
        assert value(during, "coscribe_connections") == 2
        assert value(during, "coscribe_rooms", state="active") == 1
        updates_in = value(during, "coscribe_ws_messages_received_total", type="update")
        assert updates_in >= 20
        assert value(during, "coscribe_ws_messages_received_total", type="sync_step1") >= 2
        assert value(during, "coscribe_ws_received_bytes_total") > 0
        broadcasts = value(during, "coscribe_broadcasts_total")
        assert broadcasts >= 21  # 20 typed updates and the REST edit, each to both sockets
        assert value(during, "coscribe_broadcast_frames_total") >= 2 * 21
        assert value(during, "coscribe_broadcast_bytes_total") > 0
        assert value(during, "coscribe_broadcast_fanout_seconds_count") == broadcasts
        assert value(during, "coscribe_broadcast_fanout_seconds_bucket", le="+Inf") == broadcasts
        assert value(during, "coscribe_updates_stored_total") >= 21
        flushes = value(during, "coscribe_flush_seconds_count")
        assert flushes >= 1 and value(during, "coscribe_flush_seconds_sum") > 0
        assert value(during, "coscribe_flush_batch_updates_count") == flushes
        assert value(during, "coscribe_flush_batch_updates_sum") >= 21
        assert value(during, "coscribe_unsaved_updates") == 0
        assert value(during, "coscribe_failed_writes_total") == 0
        assert value(during, "coscribe_storage_up") == 1
        assert value(during, "coscribe_auth_refusals_total", reason="missing token") >= 1
        assert value(during, "coscribe_auth_refusals_total", reason="unknown token") >= 1
        http = "coscribe_http_requests_total"
        text_route = "/api/notes/{note_id}/text"
        assert value(during, http, method="PUT", route=text_route, status="200") == 1, [
            key for key in during if key[0] == http
        ]
        assert value(during, http, method="GET", route="/metrics", status="200") >= 1
        assert value(during, http, method="GET", route="/metrics", status="401") == 1
        assert value(during, http, method="GET", route="/metrics", status="403") == 1
        # Routes by template: no series for the id that was asked for.
        assert not any("missing-note" in str(key) for key in during)
        # Every metric the Grafana dashboard queries is exposed (labelled counters that
        # counted nothing yet have a family and no sample).
        text = httpx.get(f"{server.url}/metrics", headers=as_admin).text
        families = set(re.findall(r"^# TYPE (\S+)", text, re.MULTILINE))
        for name in set(re.findall(r"coscribe_[a-z_]+", DASHBOARD.read_text())):
            family = re.sub(r"_(total|bucket|sum|count)$", "", name)
            assert {name, family} & families, f"the dashboard queries {name}, not exposed"

        for writer in writers:
            await writer.close()
        await eventually(lambda: value(scrape(), "coscribe_websockets") == 0)

        # The loopback port serves the same registry without a token.
        plain = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert plain.status_code == 200
        assert value(samples(plain.text), "coscribe_broadcasts_total") >= broadcasts


def test_a_taken_metrics_port_is_one_error_line_and_the_server_serves_on(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "COSCRIBE_SQLITE_PATH": str(tmp_path / "p.sqlite"),
            "COSCRIBE_METRICS_PORT": str(port),
        }
        with LiveServer(env, tmp_path) as server:
            assert httpx.get(f"{server.url}/metrics").status_code == 200  # auth off here
    assert f"COSCRIBE_METRICS_PORT: cannot listen on 127.0.0.1:{port}" in server.log()


def test_a_bad_metrics_port_stops_start_up_with_one_line(tmp_path):
    result = run_cli(["serve"], {"COSCRIBE_METRICS_PORT": "70000"}, tmp_path)
    assert_one_line_error(result, "COSCRIBE_METRICS_PORT", "at most 65535")
