"""Real processes for the cluster tests: `coscribe serve` instances over one PostgreSQL schema and
one Redis, a TCP proxy that plays the load balancer, a private `redis-server` to stop and start.

Every Redis key a test makes starts with its own prefix (COSCRIBE_REDIS_PREFIX), and only keys
with that prefix are deleted at the end: the shared Redis is never flushed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from crdt.protocol import decode_state_vector
from crdt.validation import NONE, read_structs
from persistence import migrate
from persistence.config import database_config_from_env
from persistence.engine import Database
from tests.live_server import LiveServer
from tests.node_peer import NodePeer
from tests.processes import accepts_tcp, free_port, stop_process, wait_ready

# How often instances beat (COSCRIBE_CLUSTER_HEARTBEAT_S): an instance is dead after three
# missed beats, so a killed one is noticed within a few seconds.
HEARTBEAT_S = 1
# The start of a uvicorn access-log line: not something the server says about a note.
ACCESS_LINE = re.compile(r'"(?:[A-Z]+ /|WebSocket /)|HTTP/1\.1"')


def new_prefix() -> str:
    return f"coscribe-test-{uuid.uuid4().hex}:"


def delete_keys(url: str, prefix: str) -> int:
    """Delete every key that starts with `prefix` (SCAN MATCH + DEL); returns how many."""
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    try:
        deleted = 0
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
        return deleted
    finally:
        client.close()


def redis_problem(url: str) -> str | None:
    """Why the Redis at `url` cannot be used, or None when it answers PING."""
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
        return None
    except redis.RedisError as exc:
        text = str(exc).strip()
        return text.splitlines()[0].rstrip(".") if text else type(exc).__name__
    finally:
        client.close()


# --- instances ------------------------------------------------------------------------------


class Cluster:
    """`coscribe serve` instances sharing one environment (one schema, one Redis, one prefix).

    `start(n)` migrates the schema once, then starts n instances side by side. Each instance's
    log is `instance.log()`; `tails()` gives every log's end, for failure messages.
    """

    def __init__(
        self,
        tmp_path: Path,
        database_url: str,
        redis_url: str | None,
        prefix: str,
        **settings: str,
    ) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.redis_url = redis_url
        self.prefix = prefix
        self.env: dict[str, str] = {
            "DATABASE_URL": database_url,
            "COSCRIBE_REDIS_PREFIX": prefix,
            "COSCRIBE_CLUSTER_HEARTBEAT_S": str(HEARTBEAT_S),
            # Fast enough that a flush or a storage fault never stretches a test.
            "COSCRIBE_FLUSH_RETRY_MAX_MS": "1000",
            **settings,
        }
        if redis_url is not None:
            self.env["REDIS_URL"] = redis_url
        self.instances: list[LiveServer] = []
        self._migrated = False

    def migrate(self) -> None:
        """Migrate the schema to head, once (in this process: what `coscribe db migrate`
        does, without starting a Python process for it)."""
        if self._migrated:
            return
        with Database(database_config_from_env({"DATABASE_URL": self.database_url})) as db:
            migrate.upgrade(db)
        self._migrated = True

    def instance(self, env: Mapping[str, str] | None = None) -> LiveServer:
        """A new (not started) instance with the cluster's environment plus `env`."""
        self.migrate()
        server = LiveServer({**self.env, **(env or {})}, self.tmp_path)
        self.instances.append(server)
        return server

    async def start(self, count: int, env: Mapping[str, str] | None = None) -> list[LiveServer]:
        """Start `count` instances at once; returns them once every one answers /health."""
        servers = [self.instance(env) for _ in range(count)]
        await asyncio.gather(*(asyncio.to_thread(server.start) for server in servers))
        return servers

    def stop_all(self) -> None:
        for server in self.instances:
            if server.process is not None and server.process.poll() is None:
                server.stop()

    def tails(self, lines: int = 40) -> str:
        out = []
        for server in self.instances:
            tail = server.log().splitlines()[-lines:]
            out.append(f"--- instance :{server.port} (last {len(tail)} lines) ---")
            out.extend(tail)
        return "\n".join(out)

    def db(self) -> psycopg.Connection:
        """A connection to the cluster's schema (search_path set by the URL)."""
        return psycopg.connect(self.database_url, autocommit=True)


def alive(server: LiveServer) -> bool:
    return server.process is not None and server.process.poll() is None


def ws_url(server: LiveServer | int) -> str:
    """The y-websocket serverUrl of an instance (or of a port: the proxy's)."""
    port = server if isinstance(server, int) else server.port
    return f"ws://127.0.0.1:{port}/ws"


def log_since(server: LiveServer, offset: int) -> list[str]:
    """The lines the server logged after `offset` characters, access-log lines left out."""
    return [
        line for line in server.log()[offset:].splitlines() if line and not ACCESS_LINE.search(line)
    ]


# --- HTTP -----------------------------------------------------------------------------------


async def health(server: LiveServer) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{server.url}/health")
        return response.json()


async def ready_status(server: LiveServer) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(f"{server.url}/health/ready")).status_code


def redis_state(body: dict[str, Any]) -> Any:
    state = body.get("redis")
    return state.get("state") if isinstance(state, dict) else None


async def api(
    server: LiveServer, method: str, path: str, token: str | None = None, **kwargs: Any
) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(method, f"{server.url}{path}", headers=headers, **kwargs)


async def create_note(server: LiveServer, note_id: str, token: str | None = None, **body) -> None:
    response = await api(server, "POST", "/api/notes", token, json={"id": note_id, **body})
    assert response.status_code == 201, response.text


async def stored_text(server: LiveServer, note_id: str, token: str | None = None) -> str:
    """The note's body as the instance serves it over REST."""
    response = await api(
        server, "GET", f"/api/notes/{note_id}/content", token, headers={"Accept": "text/plain"}
    )
    assert response.status_code == 200, response.text
    return response.text


async def served_state_vector(server: LiveServer, note_id: str) -> dict[int, int]:
    response = await api(server, "GET", f"/api/notes/{note_id}/state-vector")
    assert response.status_code == 200, response.text
    return decode_state_vector(response.content)


# --- waiting --------------------------------------------------------------------------------


async def eventually(
    check: Callable[[], Awaitable[Any]],
    what: Callable[[], str] | str,
    timeout: float,
    interval: float = 0.1,
) -> Any:
    """Poll `check()` until it returns something truthy; fail with `what` after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() >= deadline:
            message = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s: {message}")
        await asyncio.sleep(interval)


# --- Node peers -----------------------------------------------------------------------------


async def state_vector(peer: NodePeer) -> dict[int, int]:
    return decode_state_vector(base64.b64decode((await peer.call("stateVector"))["sv"]))


async def texts(peers: Iterable[NodePeer]) -> list[str]:
    return list(await asyncio.gather(*(peer.text() for peer in peers)))


async def converge(
    peers: list[NodePeer], timeout: float, *, containing: Iterable[str] = (), tails: str = ""
) -> str:
    """Wait until every peer holds the same text, containing every one of `containing`;
    return that text. The failure says what each peer has and lacks."""
    wanted = list(containing)
    latest: list[str] = []

    async def same() -> bool:
        nonlocal latest
        latest = await texts(peers)
        return len(set(latest)) == 1 and all(word in latest[0] for word in wanted)

    def describe() -> str:
        lines = ["peers did not converge:"]
        for peer, text in zip(peers, latest, strict=True):
            missing = [word for word in wanted if word not in text]
            lines.append(
                f"  {peer.name}: {len(text)} chars, lacks {len(missing)} {missing[:10]}: "
                f"{text[:200]!r}"
            )
        return "\n".join(lines) + ("\n" + tails if tails else "")

    await eventually(same, describe, timeout, interval=0.2)
    return latest[0]


class Typist:
    """A Node peer typing numbered words (`<tag.n>`) at the start of the note's body. A word is
    one insert at index 0, so no other insert can land inside it; `typed` lists them all."""

    def __init__(self, peer: NodePeer, tag: str) -> None:
        self.peer = peer
        self.tag = tag
        self.typed: list[str] = []

    def next_word(self) -> str:
        return f"<{self.tag}.{len(self.typed)}>"

    async def type(self, count: int = 1) -> list[str]:
        words = []
        for _ in range(count):
            word = self.next_word()
            await self.peer.call("insertText", index=0, text=word)
            self.typed.append(word)
            words.append(word)
        return words

    async def keep_typing(self, stop: asyncio.Event, interval: float) -> None:
        """Type a word every `interval` s until `stop` is set (the peer types offline too)."""
        while not stop.is_set():
            await self.type()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    @property
    def typed_length(self) -> int:
        """UTF-16 length of everything typed: the peer's clock (words are ASCII)."""
        return sum(len(word) for word in self.typed)


async def type_for(typists: list[Typist], seconds: float, interval: float) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(t.keep_typing(stop, interval)) for t in typists]
    try:
        await asyncio.sleep(seconds)  # the typing itself lasts this long
    finally:
        stop.set()
        await asyncio.gather(*tasks)


# --- what is stored -------------------------------------------------------------------------


def stored_updates(cluster: Cluster, note_id: str) -> list[bytes]:
    with cluster.db() as conn:
        rows = conn.execute(
            "SELECT update FROM note_updates WHERE note_id = %s ORDER BY seq", (note_id,)
        ).fetchall()
    return [bytes(row[0]) for row in rows]


def stored_ranges(updates: Iterable[bytes]) -> dict[int, list[tuple[int, int]]]:
    """Per client, the clock ranges (start, end) of every item in the stored updates, sorted;
    a range stored twice appears twice."""
    ranges: dict[int, list[tuple[int, int]]] = {}
    for update in updates:
        for client, clock, length, kind, *_ in read_structs(update).items:
            if kind != NONE:
                ranges.setdefault(client, []).append((clock, clock + length))
    return {client: sorted(found) for client, found in ranges.items()}


def overlaps(ranges: dict[int, list[tuple[int, int]]]) -> list[str]:
    """Where stored ranges of one client overlap: an update stored more than once."""
    found = []
    for client, spans in ranges.items():
        end = 0
        for start, stop in spans:
            if start < end:
                found.append(f"client {client}: [{start},{stop}) stored again (up to {end})")
            end = max(end, stop)
    return found


def covered(ranges: dict[int, list[tuple[int, int]]]) -> dict[int, int]:
    """Per client, the clock up to which the stored ranges cover everything from 0."""
    out = {}
    for client, spans in ranges.items():
        end = 0
        for start, stop in spans:
            if start > end:
                break
            end = max(end, stop)
        out[client] = end
    return out


# --- the load balancer ----------------------------------------------------------------------


class TcpProxy:
    """Forwards every connection it accepts to 127.0.0.1:`target`; `retarget` sends new
    connections elsewhere. When either side of a connection ends, both do. With `delay`,
    every chunk is passed on that many seconds after it arrived (latency, order kept)."""

    def __init__(self, target: int, delay: float = 0.0) -> None:
        self.target = target
        self.delay = delay
        self.port = 0
        self.accepted = 0
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def retarget(self, target: int) -> None:
        self.target = target

    @property
    def connections(self) -> int:
        return len(self._writers) // 2

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
            except OSError:
                self.refused += 1
                writer.close()
                return
            self.accepted += 1
            self._writers.update((writer, up_writer))
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                self._writers.difference_update((writer, up_writer))
        finally:
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    return
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # the latency this proxy adds
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(send())
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((loop.time() + self.delay, data))
                if not data or sender.done():
                    break
            await sender
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await sender
            # One side ended: end the other (its reader then ends the opposite direction),
            # so each peer sees its connection go.
            writer.close()

    def drop_all(self) -> None:
        """Cut every open connection (both sides)."""
        for writer in list(self._writers):
            transport = writer.transport
            with contextlib.suppress(OSError):
                transport.abort()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_all()
        # Cut connections end their handlers; cancelling one would make asyncio log it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 5)
        if self._server is not None:
            await self._server.wait_closed()


# --- a private Redis ------------------------------------------------------------------------


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


class PrivateRedis:
    """A `redis-server` of the test's own on a free port, without persistence: stopped by its
    pid, restarted (empty) on the same port."""

    def __init__(self, directory: Path) -> None:
        binary = redis_server_binary()
        assert binary is not None, "redis-server is not on PATH"
        self.binary = binary
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "redis.log"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 15) -> PrivateRedis:
        assert not self.running(), "already running"
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(self.process, accepts_tcp(self.port), timeout)
            # Accepting is not yet serving (it may still load): wait for PING.
            deadline = time.monotonic() + timeout
            while redis_problem(self.url) is not None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis-server on {self.port} does not answer PING")
                time.sleep(0.05)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"redis-server did not start: {exc}\n{self.log()}") from None
        self.starts += 1
        return self

    def stop(self) -> None:
        """SIGTERM to its pid (SIGKILL if it lingers); it saves nothing."""
        if self.process is not None:
            stop_process(self.process, 10)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=3, socket_timeout=10)
