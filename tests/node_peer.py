"""Drive real Node `yjs` + `y-websocket` peers (tests/node/peer.mjs) from asyncio tests.

    from tests.node_peer import NodePeer, require_node

    async def test_two_editors(live_url):
        require_node()  # skips without node; fails under CI=true
        async with NodePeer.start() as a, NodePeer.start() as b:
            await a.call("connect", url=f"{live_url}/ws", room="n1", clientId=1)
            await b.call("connect", url=f"{live_url}/ws", room="n1", clientId=2)
            await a.call("insertText", index=0, text="hi")
            await b.call("waitText", text="hi", timeout=5)

Every command is one JSON line `{"id", "cmd", ...args}` answered by one line
`{"id", "ok": true, ...result}` or `{"id", "ok": false, "error"}`; `call` returns the result
dict or raises NodePeerError with the peer's stderr. Unsolicited `{"event": ...}` lines are
kept in `peer.events` and can be awaited with `wait_event`. Timeouts sent to the peer are in
seconds. The command list is at the top of tests/node/peer.mjs and in its `commands` table.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import itertools
import json
import selectors
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.ci import IN_CI
from tests.locks import file_lock

NODE_DIR = Path(__file__).resolve().parent / "node"
PEER_SCRIPT = NODE_DIR / "peer.mjs"
REFERENCE_SERVER_SCRIPT = NODE_DIR / "reference-server.mjs"
MIN_NODE_MAJOR = 20
START_TIMEOUT = 15.0
# A call's own deadline is the peer-side timeout plus this margin, so that a peer-side timeout
# arrives as a readable error reply instead of a bare asyncio.TimeoutError.
CALL_MARGIN = 5.0
DEFAULT_CALL_TIMEOUT = 15.0
STDERR_LINES = 200
MAX_EVENTS = 10_000


class NodeUnavailable(RuntimeError):
    """node or npm is missing or too old, or the npm install failed."""


class NodePeerError(RuntimeError):
    """A command failed, timed out, or the peer process died."""


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=NODE_DIR, capture_output=True, text=True, timeout=timeout, check=False
    )


def _check_tools() -> str:
    node = shutil.which("node")
    if node is None:
        raise NodeUnavailable(
            f"`node` is not on PATH: the Node interop tests need Node >= {MIN_NODE_MAJOR} and npm"
        )
    version = _run([node, "--version"], 30).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        major = 0
    if major < MIN_NODE_MAJOR:
        raise NodeUnavailable(f"Node {version or '?'} is too old: need >= {MIN_NODE_MAJOR}")
    if shutil.which("npm") is None:
        raise NodeUnavailable("`npm` is not on PATH: it installs tests/node's dependencies")
    return node


def _node_modules_fresh() -> bool:
    # npm writes node_modules/.package-lock.json on every install: newer than the lockfile
    # means node_modules was installed from this lockfile (or a later edit of it).
    marker = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    return marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime


def _install_lock() -> contextlib.AbstractContextManager[None]:
    # Several test runs may share this working tree: two `npm ci` at once would delete each
    # other's node_modules.
    return file_lock("npm-" + hashlib.sha256(str(NODE_DIR).encode()).hexdigest()[:16])


_installed = False


def ensure_node_modules() -> None:
    """Install tests/node from package-lock.json (`npm ci`) unless node_modules is current.

    Raises NodeUnavailable when node/npm is missing or too old, or npm ci fails.
    """
    global _installed
    if _installed:
        return
    _check_tools()
    if not _node_modules_fresh():
        with _install_lock():
            if not _node_modules_fresh():
                result = _run(["npm", "ci", "--no-audit", "--no-fund"], 600)
                if result.returncode != 0:
                    raise NodeUnavailable(
                        f"`npm ci` in {NODE_DIR} failed ({result.returncode}):\n"
                        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
                    )
    _installed = True


def require_node() -> None:
    """In a test: make sure the Node harness is installed; skip without node, fail under CI."""
    import pytest

    try:
        ensure_node_modules()
    except NodeUnavailable as exc:
        if IN_CI or shutil.which("node") is not None:
            # Under CI, or with node present but a broken install, this is a real failure.
            pytest.fail(f"Node harness unavailable: {exc}", pytrace=False)
        pytest.skip(f"{exc}; install Node >= {MIN_NODE_MAJOR} to run the Node interop tests")


class NodePeer:
    """One y-websocket peer in a Node child process. Create with `await NodePeer.start()` or
    `async with NodePeer.start() as peer:`."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name
        self.events: list[dict[str, Any]] = []
        self.versions: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._event_added = asyncio.Event()
        self._ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._protocol_errors: list[str] = []
        self._readers = [
            asyncio.create_task(self._read_stdout(), name=f"{name}-stdout"),
            asyncio.create_task(self._read_stderr(), name=f"{name}-stderr"),
        ]
        self._closed = False

    @classmethod
    def start(cls, name: str | None = None, *, timeout: float = START_TIMEOUT) -> _PeerStart:
        """Spawn a peer; await it, or use it as an async context manager (closes on exit)."""
        return _PeerStart(name, timeout)

    @classmethod
    async def spawn(cls, name: str | None = None, *, timeout: float = START_TIMEOUT) -> NodePeer:
        ensure_node_modules()
        process = await asyncio.create_subprocess_exec(
            "node",
            str(PEER_SCRIPT),
            cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,  # encodeState replies can be large single lines
        )
        peer = cls(process, name or f"peer-{process.pid}")
        try:
            ready = await asyncio.wait_for(asyncio.shield(peer._ready), timeout)
        except (TimeoutError, NodePeerError) as exc:
            await peer.kill()
            raise NodePeerError(f"{peer.name} did not start: {exc}{peer._stderr_tail()}") from exc
        peer.versions = ready.get("versions", {})
        return peer

    # -- commands ---------------------------------------------------------------------------

    async def call(self, cmd: str, *, call_timeout: float | None = None, **args: Any) -> dict:
        """Send one command and return its result (the reply minus id/ok).

        `call_timeout` bounds the wait on the Python side; by default it is the peer-side
        `timeout` argument (seconds) plus a margin, or 15 s.
        """
        if self._closed or self.process.returncode is not None:
            raise NodePeerError(f"{self.name}: peer is closed; cannot {cmd}{self._stderr_tail()}")
        if call_timeout is None:
            peer_timeout = args.get("timeout")
            call_timeout = (
                DEFAULT_CALL_TIMEOUT if peer_timeout is None else peer_timeout + CALL_MARGIN
            )
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        line = json.dumps({"id": request_id, "cmd": cmd, **args}) + "\n"
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(line.encode())
            await self.process.stdin.drain()
            reply = await asyncio.wait_for(future, call_timeout)
        except TimeoutError:
            raise NodePeerError(
                f"{self.name}: no reply to {cmd} within {call_timeout}s{self._stderr_tail()}"
            ) from None
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise NodePeerError(
                f"{self.name}: peer gone while sending {cmd}: {exc}{self._stderr_tail()}"
            ) from exc
        finally:
            self._pending.pop(request_id, None)
        if not reply.get("ok"):
            raise NodePeerError(
                f"{self.name}: {cmd} {_short(args)} failed: {reply.get('error')}"
                f"{self._stderr_tail()}"
            )
        return {key: value for key, value in reply.items() if key not in ("id", "ok")}

    async def connect(
        self, url: str, room: str, client_id: int | None = None, **args: Any
    ) -> dict[str, Any]:
        """`connect` and wait until synced. url is the provider's serverUrl (ws://HOST:PORT/ws
        for coscribe, ws://HOST:PORT for the reference server)."""
        if client_id is not None:
            args["clientId"] = client_id
        return await self.call("connect", url=url, room=room, **args)

    async def text(self, name: str = "content") -> str:
        return (await self.call("getText", name=name))["text"]

    async def wait_event(
        self,
        event: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        *,
        timeout: float = 10.0,
        since: int = 0,
    ) -> dict[str, Any]:
        """The first event named `event` (from index `since` of self.events) that matches."""

        async def find() -> dict[str, Any]:
            index = since
            while True:
                while index < len(self.events):
                    item = self.events[index]
                    index += 1
                    if item.get("event") == event and (predicate is None or predicate(item)):
                        return item
                if self.process.returncode is not None:
                    raise NodePeerError(f"{self.name} exited waiting for {event}")
                self._event_added.clear()
                await self._event_added.wait()

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            raise NodePeerError(
                f"{self.name}: no {event!r} event within {timeout}s; events: "
                f"{self.events[-20:]}{self._stderr_tail()}"
            ) from None

    def errors(self) -> list[dict[str, Any]]:
        """`error` events (uncaught exceptions in the peer) and non-JSON stdout lines."""
        found = [item for item in self.events if item.get("event") == "error"]
        return found + [{"event": "protocol", "error": line} for line in self._protocol_errors]

    @property
    def stderr(self) -> str:
        return "\n".join(self._stderr)

    # -- lifecycle --------------------------------------------------------------------------

    async def close(self, timeout: float = 10.0) -> None:
        """Ask the peer to destroy its provider and exit; kill it if it does not. Idempotent."""
        if self._closed:
            return
        try:
            if self.process.returncode is None:
                with contextlib.suppress(NodePeerError):
                    await self.call("close", call_timeout=timeout)
                try:
                    await asyncio.wait_for(self.process.wait(), timeout)
                except TimeoutError:
                    self.process.kill()
                    await self.process.wait()
        finally:
            self._closed = True
            await self._finish_readers()

    async def kill(self) -> None:
        """End the peer abruptly (SIGKILL): no awareness removal, no close handshake."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        self._closed = True
        await self._finish_readers()

    async def _finish_readers(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        for task in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)

    # -- reading ----------------------------------------------------------------------------

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        try:
            async for raw in self.process.stdout:
                self._dispatch(raw.decode(errors="replace").rstrip("\n"))
        finally:
            returncode = await self.process.wait()
            error = NodePeerError(f"{self.name} exited with code {returncode}{self._stderr_tail()}")
            if not self._ready.done():
                self._ready.set_exception(error)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            self._event_added.set()

    def _dispatch(self, line: str) -> None:
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            self._protocol_errors.append(line)
            self._stderr.append(f"[non-JSON stdout] {line}")
            return
        if not isinstance(message, dict):
            self._protocol_errors.append(line)
            return
        if "event" in message:
            if message["event"] == "ready" and not self._ready.done():
                self._ready.set_result(message)
            if len(self.events) < MAX_EVENTS:
                self.events.append(message)
            self._event_added.set()
            return
        future = self._pending.get(message.get("id"))  # type: ignore[arg-type]
        if future is not None and not future.done():
            future.set_result(message)
        elif message.get("id") is None:
            # A reply the peer could not tie to a request (e.g. invalid JSON): keep it visible.
            self._protocol_errors.append(line)

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self._stderr.append(raw.decode(errors="replace").rstrip("\n"))

    def _stderr_tail(self, lines: int = 30) -> str:
        tail = list(self._stderr)[-lines:]
        if not tail:
            return ""
        return f"\n--- {self.name} stderr (last {len(tail)} lines) ---\n" + "\n".join(tail)


class _PeerStart:
    """`await NodePeer.start()` or `async with NodePeer.start() as peer:`."""

    def __init__(self, name: str | None, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self.peer: NodePeer | None = None

    def __await__(self) -> Generator[Any, None, NodePeer]:
        return NodePeer.spawn(self.name, timeout=self.timeout).__await__()

    async def __aenter__(self) -> NodePeer:
        self.peer = await NodePeer.spawn(self.name, timeout=self.timeout)
        return self.peer

    async def __aexit__(self, *exc_info: object) -> None:
        if self.peer is not None:
            await self.peer.close()


def _short(args: dict[str, Any], limit: int = 200) -> str:
    text = json.dumps(args)
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass
class ReferenceServer:
    """A running @y/websocket-server; `url` is the provider serverUrl (room = URL path)."""

    host: str
    port: int
    url: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


@contextlib.contextmanager
def reference_server(
    host: str = "127.0.0.1", port: int = 0, *, timeout: float = START_TIMEOUT
) -> Iterator[ReferenceServer]:
    """Run the reference y-websocket server (tests/node/reference-server.mjs) for a block.

    Synchronous on purpose: it belongs to no event loop, so a module- or session-scoped
    fixture can share one server between tests that each run in their own loop.
    """
    ensure_node_modules()
    with tempfile.TemporaryFile() as log:
        args = ["--host", host, "--port", str(port), "--exit-on-stdin-close"]
        process = subprocess.Popen(
            ["node", str(REFERENCE_SERVER_SCRIPT), *args],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        try:
            assert process.stdout is not None
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                line = process.stdout.readline() if selector.select(timeout) else b""
            try:
                ready = json.loads(line)
            except json.JSONDecodeError:
                log.seek(0)
                stderr = log.read().decode(errors="replace")
                raise NodePeerError(
                    f"reference server did not start within {timeout}s "
                    f"(stdout {line!r}, exit code {process.poll()}):\n{stderr}"
                ) from None
            yield ReferenceServer(ready["host"], ready["port"], ready["url"], process, log)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()
