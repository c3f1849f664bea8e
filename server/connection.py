"""Connection: one websocket in one room, and the bound on what it may leave unsent.

The room never awaits a socket: send() hands a frame to the connection's Output (output.py),
which writes it at once. What the client has not read yet waits in the Output's buffer (under
coscribe's server, the transport's own write buffer); a connection with more than max_bytes
waiting is closed with TRY_AGAIN_LATER and its buffer dropped, so a client that stops reading
costs a bounded amount of memory and never slows the rest of the room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from . import closecodes
from .auth import OPEN, Principal
from .output import Frame, Output
from .waiting import Flag

log = logging.getLogger("coscribe.connection")

Close = Callable[[int, str], Awaitable[None]]
# How long a close may wait for the client: after that the socket is dropped.
CLOSE_TIMEOUT_S = 5.0
# At shutdown, how long frames still queued (not yet handed to the socket) may take to go out.
DRAIN_S = 0.5


class Connection:
    __slots__ = (
        "_close",
        "_closing",
        "_max_bytes",
        "awareness_dropped",
        "close_code",
        "closed",
        "dropped_updates",
        "note_id",
        "output",
        "peer",
        "principal",
    )

    def __init__(
        self,
        note_id: str,
        peer: str,
        output: Output,
        close: Close,
        *,
        max_bytes: int,
        principal: Principal = OPEN,
    ) -> None:
        self.note_id = note_id
        self.peer = peer
        self.output = output
        self._close = close
        self._max_bytes = max_bytes
        self._closing: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.closed = Flag()
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

    def send(self, frame: Frame | bytes) -> None:
        """Write a frame now. A connection with too much unsent is closed, never waited for."""
        if self.close_code is not None:
            return
        if type(frame) is bytes:
            frame = Frame(frame)
        waiting = self.output.buffered()
        # One frame bigger than the budget is allowed when nothing else is waiting.
        if waiting and waiting + len(frame) > self._max_bytes:
            log.warning("closing %r: %d bytes unsent, it is not reading", self, waiting)
            self.abort(closecodes.TRY_AGAIN_LATER, drop=True)
            return
        self.output.write(frame)

    def abort(self, code: int, reason: str | None = None, *, drop: bool = False) -> None:
        """Close from synchronous code (a broadcast, a bad frame): schedule the close.
        `drop`: the client is not reading, so the close frame will wait behind what it has
        not read; its socket is dropped if it is not gone within CLOSE_TIMEOUT_S."""
        if self.close_code is not None:
            return
        self.close_code = code
        # Kept, so the task is not garbage-collected mid-close; _finish never raises.
        self._closing = asyncio.get_running_loop().create_task(
            self._finish(code, reason, CLOSE_TIMEOUT_S if drop else None),
            name=f"close {self.peer}",
        )

    async def close(self, code: int, reason: str | None = None) -> None:
        """Close after the frames already written are sent (used at shutdown)."""
        if self.close_code is not None:
            await self.closed.wait()
            return
        self.close_code = code
        await self.output.drain(DRAIN_S)
        await self._finish(code, reason, CLOSE_TIMEOUT_S)

    async def _finish(self, code: int, reason: str | None, timeout: float | None) -> None:
        try:
            await self.output.stop()
            async with asyncio.timeout(timeout):
                await self._close(code, reason or closecodes.REASONS.get(code, ""))
        except TimeoutError:
            log.info("closing %r: no room for the close frame in %ss, dropped", self, timeout)
            self.output.abort()
        except Exception:
            # The client went away first (the server's socket layer says so with its own
            # exception types): nothing is left to close, and nobody to tell.
            log.debug("closing %r: the socket was already gone", self, exc_info=True)
        finally:
            self.closed.set()

    async def stop(self) -> None:
        """The reader saw the peer go: write nothing more (nothing to close)."""
        if self.close_code is None:
            self.close_code = closecodes.NORMAL
        await self.output.stop()
        self.closed.set()
