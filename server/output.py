"""Output: how a Connection's frames reach its socket without the room ever awaiting it.

A broadcast encodes its websocket frame once (a `Frame`) and hands the same bytes to every
recipient's `Output`, which writes them at once:

- `TransportOutput`, under coscribe's own server (runner.py): the frame's bytes go straight to
  the connection's asyncio transport, the way `websockets.broadcast()` does it. No task, no
  queue and no await per recipient; what the kernel does not take at once waits in the
  transport's write buffer, which is what the Connection measures to find a client that stops
  reading. `DirectWebSocketProtocol`, a uvicorn websocket protocol class, offers it to the app
  through an ASGI scope extension (`coscribe.transport`), and only where the frames of every
  connection are the same bytes: without permessage-deflate, which runner.py turns off.
- `QueuedOutput`, under any other ASGI server (or when a client negotiated compression): a
  queue drained by one writer task through the ASGI `send`, as a plain ASGI app must.

Both keep one connection's frames in the order they were sent.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode

from .rate import Rate
from .waiting import Flag, Inbox

log = logging.getLogger("coscribe.ws")

EXTENSION = "coscribe.transport"
# How much of one socket read is parsed at a time: a slice holds at most 585 minimal frames.
INBOUND_SLICE = 4096
# Messages one socket hands its listener in a turn of the loop, while more of its bytes wait:
# after that the rest waits for the next turn, so a burst of one client's frames does not hold
# up the others (a turn may finish the slice it started: a few hundred tiny frames at most).
FRAMES_PER_TURN = 16
# The first byte of a pong as a server sends it: FIN and the opcode.
PONG = bytes([0x80 | Opcode.PONG])


class Frame:
    """One binary message for any number of connections; its wire bytes are built once."""

    __slots__ = ("_wire", "payload")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self._wire: bytes | None = None

    def __len__(self) -> int:
        return len(self.payload)

    @property
    def wire(self) -> bytes:
        """The whole websocket frame as a server sends it (unmasked, one fragment)."""
        if self._wire is None:
            self._wire = WireFrame(Opcode.BINARY, self.payload).serialize(mask=False)
        return self._wire


class Output(Protocol):
    """Where a Connection's frames go. write() never blocks and never awaits."""

    def write(self, frame: Frame) -> None: ...

    def buffered(self) -> int:
        """Bytes handed to write() and not yet taken by the kernel."""
        ...

    def inbound(self) -> bool:
        """Whether messages from the client wait already (unknown: True)."""
        ...

    def listen(self, handler: Callable[[bytes], None]) -> bool:
        """Hand binary messages to ``handler`` as they are parsed instead of through the
        app's receive(), whenever nothing waits there before them (order is kept); text
        frames and the end of the socket still come through receive(). False if this output
        cannot."""
        ...

    def abort(self) -> None:
        """Drop the connection and whatever it still buffers (it stopped reading)."""
        ...

    async def drain(self, timeout: float) -> None:
        """Wait up to `timeout` for frames not yet handed to the socket (before a close)."""
        ...

    async def stop(self) -> None:
        """Nothing more will be written; wait for a writer of its own to end. Never raises."""
        ...


class TransportOutput:
    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    def write(self, frame: Frame) -> None:
        protocol = self._protocol
        # After the close frame nothing may follow; after the peer left nothing can.
        if not (protocol.close_sent or protocol.disconnected):
            protocol.transport.write(frame.wire)

    def buffered(self) -> int:
        return self._protocol.transport.get_write_buffer_size()

    def inbound(self) -> bool:
        """The client's next messages are read already (a burst): let others go first."""
        return self._protocol.waiting()

    def listen(self, handler: Callable[[bytes], None]) -> bool:
        self._protocol.listen(handler)
        return True

    def abort(self) -> None:
        self._protocol.transport.abort()

    async def drain(self, timeout: float) -> None:
        # Everything is in the transport already, which sends it before the close frame.
        return None

    async def stop(self) -> None:
        return None


class DirectWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, offering the app a TransportOutput for its socket, and
    lighter per socket: an idle server is thousands of these."""

    # Pings are answered here, below the app and its message rate: they get a bucket of
    # their own with the same limits (configured()).
    max_pings_per_s: float = 100.0
    ping_burst: int = 1000

    @classmethod
    def configured(cls, max_pings_per_s: float, ping_burst: int) -> type[DirectWebSocketProtocol]:
        return type(
            cls.__name__, (cls,), {"max_pings_per_s": max_pings_per_s, "ping_burst": ping_burst}
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pings = Rate(self.max_pings_per_s, self.ping_burst)
        # Same interface, a tenth of the memory (waiting.py). Inbound messages stay bounded:
        # the base class pauses reading after each one until the app has taken it.
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag(True)  # type: ignore[assignment]
        self._held = b""  # bytes read but not parsed yet (data_received)
        self._held_at = 0
        # The app's handler of binary messages (listen), and how many it had this turn.
        self._listener: Callable[[bytes], None] | None = None
        self._heard = 0
        self._later = False  # a _feed is scheduled for the next turn

    def listen(self, handler: Callable[[bytes], None]) -> None:
        """Binary messages go to ``handler`` from now on, called from data_received: no
        queue, no task switch and no ASGI message per frame. Those queued already, and any
        behind a message queued for the app's task (a text frame), still go through
        receive(), in order; so do text frames and the disconnect."""
        self._listener = handler

    def data_received(self, data: bytes) -> None:
        # One read of the socket can hold 256 KiB of frames, and websockets parses a read
        # into events all at once: 37,000 seven-byte frames became 9 MiB of messages waiting
        # for the app. Parse it a slice at a time instead, and keep the bytes of the rest
        # (with reading paused) until the app has taken what the slices before gave.
        if self._held:
            self._held = self._held[self._held_at :] + data
        else:
            self._held = data
        self._held_at = 0
        self._feed()

    def _feed(self) -> None:
        held = self._held
        self._heard = 0
        # After the close frame, messages are discarded, not queued: read on for the reply.
        while self._held_at < len(held) and (self.queue.empty() or self.close_sent):
            if self.transport.is_closing():
                held = b""  # a protocol error closed it: the rest is not read
                break
            if self._heard >= FRAMES_PER_TURN:
                self._feed_next_turn()
                break
            start = self._held_at
            self._held_at = start + INBOUND_SLICE
            super().data_received(held[start : self._held_at])
        if self._held_at >= len(held):
            self._held, self._held_at = b"", 0
        elif not self.read_paused:
            # Not paused by a message (the app has yet to take the connect event), or its
            # listener had its share of this turn.
            self.read_paused = True
            self.transport.pause_reading()

    def _feed_next_turn(self) -> None:
        if not self._later:
            self._later = True
            self.loop.call_soon(self._feed_later)

    def _feed_later(self) -> None:
        self._later = False
        if not self.transport.is_closing():
            self._feed()
            self._resume_when_taken()

    def _resume_when_taken(self) -> None:
        """Read again once nothing read waits for the app (and the peer reads what it is
        sent: handle_ping)."""
        if (
            self.read_paused
            and self.queue.empty()
            and not self._held
            and not self.close_sent
            and self.writable.is_set()
        ):
            self.read_paused = False
            self.transport.resume_reading()

    def send_receive_event_to_app(self) -> None:
        # uvicorn pauses reading after every message until the app takes it: two epoll_ctl
        # calls per frame for a client sending one update per read. Messages here come from
        # one slice at a time (_feed), and reading pauses only while bytes wait unparsed,
        # which bounds what a socket holds just the same.
        if self.curr_msg_data_type != "bytes" or self.close_sent:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        # Straight to the listener, unless a message waits for the app's task (a text frame):
        # what follows it waits behind it, in order.
        if self._listener is not None and self.queue.empty():
            self._heard += 1
            self._listener(data)
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})

    def waiting(self) -> bool:
        """Messages parsed and not yet taken by the app."""
        return not self.queue.empty()

    async def receive(self) -> Any:
        message = await self.queue.get()
        if self.queue.empty():
            if self._listener is None:
                self._feed()
                self._resume_when_taken()
            else:
                # Not now: the listener would hear the next frames before the app has
                # handled this one. The app handles it before it awaits again.
                self._feed_next_turn()
        return message

    def connection_lost(self, exc: Exception | None) -> None:
        if self._held and not self.close_sent:
            # What the client sent before it went still reaches the app (and is stored);
            # only data messages: nothing can be answered on a lost connection.
            self.conn.receive_data(self._held[self._held_at :])
            for event in self.conn.events_received():
                if isinstance(event, WireFrame) and event.opcode in (Opcode.BINARY, Opcode.CONT):
                    (self.handle_bytes if event.opcode is Opcode.BINARY else self.handle_cont)(
                        event
                    )
        self._held, self._held_at = b"", 0
        super().connection_lost(exc)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        # A compressed connection needs frames of its own: it gets the plain ASGI path.
        if scope is not None and not self.conn.extensions:
            scope["extensions"][EXTENSION] = TransportOutput(self)

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            # The handshake's request and response (two header maps, about 3 kB) are only
            # read until the response is sent; the scope keeps the headers the app reads.
            # websockets' parser still holds the request (a local of its generator, for the
            # socket's life): its headers, some 30 objects, are emptied here.
            if self.request is not None:
                self.request.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]
        elif message["type"] == "websocket.close" and self._held:
            self._feed()  # the peer's closing reply may be among the bytes held

    def handle_ping(self) -> None:
        if self.close_sent:
            return
        if not self._pings.take():
            # A flood of pings from a client that reads costs the loop a pong each.
            log.warning("%s: over %g pings/s, closing", _peer(self.client), self.max_pings_per_s)
            self.conn.fail(1008, "too many pings")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.transport.close()
            return
        # websockets queued a pong for each ping. A peer that pings and does not read what
        # it is sent would fill the write buffer with pongs as fast as it sends pings, out
        # of reach of the Connection's bound: while the transport is over its high-water
        # mark (not writable), its pongs are dropped (anything else queued still goes out)
        # and reading stops until it reads again, else parsing its flood holds the loop.
        if self.writable.is_set():
            super().handle_ping()
            return
        output = [data for data in self.conn.data_to_send() if data[:1] != PONG]
        if output:
            self.transport.write(b"".join(output))
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        # Reading paused above resumes once the peer reads; reading paused by uvicorn for
        # messages the app has not taken yet resumes when it takes them (receive()).
        self._resume_when_taken()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown"


SendBytes = Callable[[bytes], Awaitable[None]]


class QueuedOutput:
    """Frames queued and drained by one writer task through an async send (ASGI)."""

    __slots__ = ("_bytes", "_queue", "_send", "_wakeup", "_writer")

    def __init__(self, send: SendBytes) -> None:
        self._send = send
        self._queue: collections.deque[bytes] = collections.deque()
        self._bytes = 0
        self._wakeup = Flag()
        self._writer: asyncio.Task[None] | None = None

    def write(self, frame: Frame) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        self._queue.append(frame.payload)
        self._bytes += len(frame.payload)
        self._wakeup.set()

    def buffered(self) -> int:
        return self._bytes

    def inbound(self) -> bool:
        return True

    def listen(self, handler: Callable[[bytes], None]) -> bool:
        return False  # messages come through ASGI's receive

    def abort(self) -> None:
        self._queue.clear()
        self._bytes = 0
        if self._writer is not None:
            self._writer.cancel()

    async def stop(self) -> None:
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        self._queue.clear()
        self._bytes = 0

    async def drain(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._queue and self._writer is not None and not self._writer.done():
            if loop.time() >= deadline:
                return
            await asyncio.sleep(0.01)

    async def _write_loop(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            payload = self._queue.popleft()
            await self._send(payload)
            # Counted as buffered until sent, so a client that stops reading is seen as such.
            self._bytes -= len(payload)
