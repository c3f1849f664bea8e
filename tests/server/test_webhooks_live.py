"""Webhooks on a real server with a real HTTP receiver on a free port: signed deliveries, a
receiver that fails then recovers, one that hangs, one that is down across a server restart,
and the URLs refused at registration."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.live_server import LiveServer
from tests.processes import free_port
from tests.yclient import eventually

SECRET = "a-very-secret-secret"
FAST = {
    "COSCRIBE_WEBHOOK_RETRY_MS": "200",
    "COSCRIBE_WEBHOOK_TIMEOUT_S": "1",
    "COSCRIBE_WORKER_POLL_S": "1",
    "COSCRIBE_SEARCH_INDEX_DELAY_MS": "100",
}


class Receiver:
    """A real HTTP server in a thread. ``answer(n)`` gives the status for the n-th request
    (from 1), or None to hang without answering."""

    def __init__(self, answer: Callable[[int], int | None] = lambda n: 200, port: int = 0):
        self.answer = answer
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.answer(len(receiver.requests))
                if status is None:
                    receiver.release.wait(30)  # hang: the server must give up first
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict]:
        return [json.loads(body)["event"] for _, body in self.requests]


@pytest.fixture
def env(tmp_path):
    return {"COSCRIBE_SQLITE_PATH": str(tmp_path / "notes.sqlite"), **FAST}


async def register(http: httpx.AsyncClient, url: str, **extra) -> dict:
    await http.post("/api/workspaces", json={"id": "team", "slug": "team"})
    response = await http.post(
        "/api/webhooks", json={"workspace_id": "team", "url": url, "secret": SECRET, **extra}
    )
    assert response.status_code == 201, response.text
    assert "secret" not in response.json()
    return response.json()


async def deliveries(http: httpx.AsyncClient, hook: dict) -> list[dict]:
    response = await http.get(f"/api/webhooks/{hook['id']}/deliveries")
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def wait_delivery(http, hook, status: str, timeout: float = 20) -> dict:
    found: list[dict] = []

    async def check() -> bool:
        found[:] = await deliveries(http, hook)
        return bool(found) and found[0]["status"] == status

    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, (status, found)
        await _sleep()
    return found[0]


async def _sleep() -> None:
    await asyncio.sleep(0.1)  # between polls of the deliveries listing


async def test_deliveries_are_signed_and_carry_the_event(tmp_path, env):
    with Receiver() as receiver, LiveServer(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            hook = await register(http, receiver.url)
            await http.post("/api/notes", json={"workspace_id": "team", "id": "n", "text": "hi"})
            await http.post("/api/notes", json={"workspace_id": "default", "id": "elsewhere"})
            await eventually(lambda: len(receiver.requests) >= 2, timeout=15)
            for headers, body in receiver.requests:
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                assert headers["X-Coscribe-Signature"] == expected
                assert headers["Content-Type"] == "application/json"
            kinds = sorted((e["type"], e["note_id"]) for e in receiver.events())
            assert kinds == [("changed", "n"), ("created", "n")]  # not the other workspace's
            changed = next(e for e in receiver.events() if e["type"] == "changed")
            assert changed["patch"] == [{"position": 0, "delete": 0, "insert": "hi"}]
            listed = await deliveries(http, hook)
            assert {d["status"] for d in listed} == {"succeeded"}
            assert all(d["attempts"] == 1 and d["last_status_code"] == 200 for d in listed)


async def test_a_receiver_that_fails_then_recovers(tmp_path, env):
    with (
        Receiver(lambda n: 500 if n <= 2 else 204) as receiver,
        LiveServer(env, tmp_path) as server,
    ):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            hook = await register(http, receiver.url)
            await http.post("/api/notes", json={"workspace_id": "team", "id": "n"})
            failing = await wait_delivery(http, hook, "retrying")
            assert failing["last_status_code"] == 500
            assert "answered 500" in failing["last_error"]
            done = await wait_delivery(http, hook, "succeeded")
            assert done["attempts"] == 3 and done["last_status_code"] == 204
            bodies = {body for _, body in receiver.requests}
            assert len(bodies) == 1  # the same signed body, retried


async def test_a_hanging_receiver_times_out_and_blocks_nothing(tmp_path, env):
    with Receiver(lambda n: None) as receiver, LiveServer(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            hook = await register(http, receiver.url, max_attempts=1)
            await http.post("/api/notes", json={"workspace_id": "team", "id": "n"})
            await eventually(lambda: receiver.requests, timeout=15)
            # While the delivery waits for an answer, the server answers everyone else.
            started = time.monotonic()
            for _ in range(5):
                assert (await http.get("/health")).status_code == 200
            assert time.monotonic() - started < 1
            failed = await wait_delivery(http, hook, "failed")
            assert failed["attempts"] == 1
            assert "no answer within 1s" in failed["last_error"]


async def test_a_delivery_survives_a_server_restart(tmp_path, env):
    port = free_port()
    down_url = f"http://127.0.0.1:{port}/hook"  # nothing listens there yet
    server = LiveServer(env, tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            hook = await register(http, down_url, max_attempts=20)
            await http.post("/api/notes", json={"workspace_id": "team", "id": "n"})
            failing = await wait_delivery(http, hook, "retrying")
            assert "Connection refused" in failing["last_error"] or "Errno" in failing["last_error"]
        server.stop()
        with Receiver(port=port) as receiver:
            server.start()
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                done = await wait_delivery(http, hook, "succeeded", timeout=30)
            assert done["attempts"] >= 2
            assert [e["type"] for e in receiver.events()] == ["created"]
    finally:
        server.stop()


async def test_urls_that_are_not_http_or_point_at_the_server_are_refused(tmp_path, env):
    with LiveServer(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            await http.post("/api/workspaces", json={"id": "team", "slug": "team"})
            for url, words in [
                ("ftp://example.com/hook", "scheme"),
                ("file:///etc/passwd", "scheme"),
                ("javascript:alert(1)", "scheme"),
                ("http:///no-host", "host"),
                ("http://example.com:99999/", "port"),
                (f"{server.url}/api/notes", "this server"),
                (f"http://localhost:{server.port}/hook", "this server"),
                (f"http://127.0.0.2:{server.port}/hook", "this server"),
            ]:
                response = await http.post(
                    "/api/webhooks", json={"workspace_id": "team", "url": url, "secret": SECRET}
                )
                assert response.status_code == 422, (url, response.text)
                assert words in response.json()["detail"].lower(), (url, response.json())
            short = await http.post(
                "/api/webhooks",
                json={"workspace_id": "team", "url": "http://example.com/", "secret": "short"},
            )
            assert short.status_code == 422
