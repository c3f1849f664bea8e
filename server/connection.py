"""Connection: one websocket in one room, with a bounded outbound queue.

The room never awaits a socket: it hands frames to send(), which only queues them. A writer
task drains the queue into the socket, so a client that stops reading fills its own queue
(and the TCP buffers under it) and is disconnected with TRY_AGAIN_LATER, while the rest of the
room goes on at full speed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable

from . import closecodes
from .auth import OPEN, Principal

log = logging.getLogger("coscribe.connection")

SendBytes = Callable[[bytes], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]


class Connection:
    def __init__(
        self,
        note_id: str,
        peer: str,
        send_bytes: SendBytes,
        close: Close,
        *,
        max_frames: int,
        max_bytes: int,
        principal: Principal = OPEN,
    ) -> None:
        self.note_id = note_id
        self.peer = peer
        self._send_bytes = send_bytes
        self._close = close
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        # Awareness entries of this connection's that were over a limit or not its own.
        self.awareness_dropped = 0
        self.principal = principal
        self.dropped_updates = 0

    def __repr__(self) -> str:
        return f"<Connection {self.peer} note={self.note_id}>"

    @property
    def read_only(self) -> bool:
        """A viewer receives the note and awareness; the updates it sends are dropped."""
        return not self.principal.can_write

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(
            self._write_loop(), name=f"writer {self.peer}"
        )

    def send(self, frame: bytes) -> None:
        """Queue a frame. A connection whose queue is full is closed, never waited for."""
        if self.close_code is not None:
            return
        over_frames = len(self._queue) >= self._max_frames
        # One frame bigger than the byte budget is allowed when nothing else is waiting.
        over_bytes = self._queue and self._queued_bytes + len(frame) > self._max_bytes
        if over_frames or over_bytes:
            log.warning(
                "closing %r: %d frames / %d bytes unsent, it is not reading",
                self,
                len(self._queue),
                self._queued_bytes,
            )
            self.abort(closecodes.TRY_AGAIN_LATER)
            return
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        self._wakeup.set()

    async def _write_loop(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            frame = self._queue.popleft()
            self._queued_bytes -= len(frame)
            await self._send_bytes(frame)

    def abort(self, code: int, reason: str | None = None) -> None:
        """Close from synchronous code (a broadcast, a bad frame): schedule the close."""
        if self.close_code is not None:
            return
        self.close_code = code
        # Kept, so the task is not garbage-collected mid-close; _finish never raises.
        self._closing = asyncio.get_running_loop().create_task(
            self._finish(code, reason), name=f"close {self.peer}"
        )

    async def close(self, code: int, reason: str | None = None) -> None:
        """Close after the frames already queued are sent (used at shutdown)."""
        if self.close_code is not None:
            await self.closed.wait()
            return
        self.close_code = code
        await self._finish(code, reason, drain=True)

    async def _finish(self, code: int, reason: str | None, drain: bool = False) -> None:
        writer = self._writer
        try:
            if drain and writer is not None:
                # Give the queued frames a moment to go out before the close frame.
                for _ in range(50):
                    if not self._queue or writer.done():
                        break
                    await asyncio.sleep(0.01)
            if writer is not None and not writer.done():
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
            await self._close(code, reason or closecodes.REASONS.get(code, ""))
        except Exception:
            # The client went away first (the server's socket layer says so with its own
            # exception types): nothing is left to close, and nobody to tell.
            log.debug("closing %r: the socket was already gone", self, exc_info=True)
        finally:
            self._queue.clear()
            self._queued_bytes = 0
            self.closed.set()

    async def stop_writer(self) -> None:
        """The reader saw the peer go: stop writing (nothing to close)."""
        if self.close_code is None:
            self.close_code = closecodes.NORMAL
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        self.closed.set()
