"""A y-websocket peer in Python: a pycrdt Doc over the `websockets` client, speaking the
protocol with crdt.protocol. Used by the server tests as a real second implementation."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import pycrdt
import websockets
from websockets.asyncio.client import ClientConnection

from crdt import protocol
from crdt.protocol import AwarenessUpdate, SyncStep1, SyncStep2, SyncUpdate


class YClient:
    def __init__(self, base_url: str, note_id: str, *, client_id: int | None = None) -> None:
        self.url = f"{base_url.replace('http', 'ws', 1)}/ws/{note_id}"
        self.doc = pycrdt.Doc(client_id=client_id)
        self.synced = asyncio.Event()
        self.awareness: dict[int, object] = {}
        self.received: list[protocol.Message] = []
        self.ws: ClientConnection | None = None
        self.close_code: int | None = None
        self._reader: asyncio.Task[None] | None = None
        self._remote = object()
        self.doc.observe(self._on_local_change)
        self._applying = False

    @property
    def connected(self) -> bool:
        """True while the socket is open (its reader runs until the server or we close it)."""
        return self._reader is not None and not self._reader.done()

    @property
    def text(self) -> pycrdt.Text:
        return self.doc.get("content", type=pycrdt.Text)

    async def connect(self, **kwargs) -> YClient:
        """Connect (or reconnect, keeping the doc and whatever was edited offline)."""
        self.synced.clear()
        self.close_code = None
        self.ws = await websockets.connect(self.url, max_size=None, **kwargs)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        # A refused socket may be closed before this goes out: the reader reports its code.
        await self._send_quietly(protocol.sync_step1(self.doc.get_state()))
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                message = protocol.decode(frame)
                self.received.append(message)
                match message:
                    case SyncStep1(state_vector):
                        await self.ws.send(protocol.sync_step2(self.doc.get_update(state_vector)))
                    case SyncStep2(update) | SyncUpdate(update):
                        self._applying = True
                        try:
                            self.doc.apply_update(update)
                        finally:
                            self._applying = False
                        if isinstance(message, SyncStep2):
                            self.synced.set()
                    case AwarenessUpdate(entries):
                        for entry in entries:
                            if entry.state is None:
                                self.awareness.pop(entry.client_id, None)
                            else:
                                self.awareness[entry.client_id] = entry.state
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.ws.close_code is not None:
                self.close_code = self.ws.close_code

    def _on_local_change(self, event: pycrdt.TransactionEvent) -> None:
        if self._applying or self.ws is None:
            return
        frame = protocol.sync_update(event.update)
        asyncio.get_running_loop().create_task(self._send_quietly(frame))

    async def _send_quietly(self, frame: bytes) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            assert self.ws is not None
            await self.ws.send(frame)

    async def send(self, frame: bytes) -> None:
        assert self.ws is not None
        await self.ws.send(frame)

    async def set_awareness(self, state: object, clock: int = 1) -> None:
        entry = protocol.AwarenessEntry(self.doc.client_id, clock, state)
        await self.send(protocol.awareness(protocol.awareness_payload([entry])))

    async def wait_closed(self, timeout: float = 10) -> int | None:
        assert self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.close_code

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def eventually(
    check: Callable[[], bool], timeout: float = 10, what: str | Callable[[], str] = ""
) -> None:
    """Wait until check() is true, polling; fail with `what` (or what it returns: the state
    at the moment of failure) after timeout."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {said or check}")
        await asyncio.sleep(0.01)
