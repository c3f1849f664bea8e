"""A Redis that accepts connections and never answers (a hung server, a black-holed network):
an instance in cluster mode keeps serving its own clients, its broadcasts never wait for
Redis, and /health says Redis is down within the bounded command timeout."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from tests.live_server import LiveServer, run_cli
from tests.yclient import YClient, eventually

pytestmark = pytest.mark.postgres


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A TCP port that accepts connections, reads everything and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # never read from, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def _health(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        return json.load(response)


async def test_a_hung_redis_never_holds_up_local_editing(postgres_schemas, tmp_path, black_hole):
    env = {
        "DATABASE_URL": postgres_schemas.new(),
        "REDIS_URL": f"redis://127.0.0.1:{black_hole}/0",
        "COSCRIBE_CLUSTER_HEARTBEAT_S": "1",
    }
    assert run_cli(["db", "migrate"], env, tmp_path).returncode == 0
    with LiveServer(env, tmp_path) as server:
        note = uuid.uuid4().hex
        first = await YClient(server.url, note).connect()
        second = await YClient(server.url, note).connect()
        try:
            started = time.monotonic()
            for i in range(20):
                first.text.insert(len(first.text), f"{i} ")
                await eventually(lambda i=i: str(second.text).endswith(f"{i} "), timeout=5)
            # Twenty round trips through the room, none of them waiting for Redis.
            assert time.monotonic() - started < 5
            await eventually(lambda: _health(server.url)["redis"]["state"] == "down", timeout=15)
            report = _health(server.url)
            assert report["ready"] is True  # it still serves its clients
            assert report["redis"]["error"]
            second.text.insert(0, "still live: ")
            await eventually(lambda: str(first.text).startswith("still live: "), timeout=5)
        finally:
            await first.close()
            await second.close()
        log = server.log()
    assert log.count("Redis unavailable") == 1, log
    assert "Traceback" not in log
