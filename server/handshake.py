"""HTTP connections under limits: uvicorn's httptools HTTP protocol with a guard.

Every HTTP request and every websocket upgrade starts with a request head. A client that
opens a connection and sends its head slowly, or never, or sends an endless one, would hold
a socket and memory for free (slowloris); so would one that sends its body a byte at a time,
and one address opening connections by the thousand would use up the process's file
descriptors and starve everyone else, /health included. Here:

- the head must be complete within head_timeout_s (else 408 and close) and within
  max_head_bytes (else 431 and close). The clock starts when the connection opens and again
  when a kept-alive connection begins its next request;
- the body must be complete within body_timeout_s of its head (else 408, or only the close if
  the application already answered);
- one client address may hold at most max_connections_per_address HTTP connections, kept-alive
  ones included; the next one gets 503 and is closed before anything of it is read. A
  websocket leaves this count when it is upgraded (the websocket endpoint counts open sockets
  against max_connections_per_address of its own), so it counts once.

runner.py always serves with this class: uvicorn's h11 protocol is never used.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("coscribe.handshake")

_STATUS = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}
# One line per address this often at most while its connections are being refused: a flood
# of refusals must not become a flood of log lines.
REFUSAL_LOG_INTERVAL_S = 10.0


class _HeadTooBig(Exception):
    pass


class AddressCounts:
    """Open HTTP connections per client address, and the refusals over the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: collections.Counter[str] = collections.Counter()
        # address -> (refusals not logged yet, when the last line was written)
        self._refused: dict[str, tuple[int, float]] = {}

    def take(self, address: str) -> bool:
        if self.open[address] >= self.limit:
            self._note_refusal(address)
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]
            self._refused.pop(address, None)

    def _note_refusal(self, address: str) -> None:
        suppressed, at = self._refused.get(address, (0, float("-inf")))
        now = time.monotonic()
        if now - at < REFUSAL_LOG_INTERVAL_S:
            self._refused[address] = (suppressed + 1, at)
            return
        log.warning(
            "%s: at the limit of %d HTTP connections, refusing more with 503%s",
            address,
            self.limit,
            f" ({suppressed} refused since the last line)" if suppressed else "",
        )
        self._refused[address] = (0, now)


class GuardedHttpProtocol(HttpToolsProtocol):
    head_timeout_s: float = 10.0
    max_head_bytes: int = 16 * 1024
    body_timeout_s: float = 30.0
    addresses: AddressCounts = AddressCounts(limit=50)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._refused: int | None = None
        self._counted: str | None = None  # the address this connection counts against

    @classmethod
    def configured(
        cls,
        head_timeout_s: float,
        max_head_bytes: int,
        body_timeout_s: float = 30.0,
        max_connections_per_address: int = 50,
    ) -> type[GuardedHttpProtocol]:
        """A subclass with these limits and a count of connections of its own."""
        return type(
            cls.__name__,
            (cls,),
            {
                "head_timeout_s": head_timeout_s,
                "max_head_bytes": max_head_bytes,
                "body_timeout_s": body_timeout_s,
                "addresses": AddressCounts(max_connections_per_address),
            },
        )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else "unknown"
        if not self.addresses.take(address):
            self._refuse(503)
            return
        self._counted = address
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        self._stop_body_clock()
        self._uncount()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        # From here on the transport belongs to a websocket protocol: this one never hears of
        # the connection again (no connection_lost), and the websocket endpoint counts it.
        self._stop_head_clock()
        self._uncount()
        super().handle_websocket_upgrade()
        # The parser holds this protocol's callbacks and this protocol the parser: without
        # the cut, every upgraded socket left a dozen objects for the cycle collector, and a
        # thousand of them made a young-generation pass of 18-40 ms under load. The parser
        # has read its last byte: the transport feeds the websocket protocol from now on.
        self.parser = None  # type: ignore[assignment]

    def _uncount(self) -> None:
        if self._counted is not None:
            self.addresses.release(self._counted)
            self._counted = None

    # --- the head ---------------------------------------------------------------------------

    def _start_head_clock(self) -> None:
        self._head_bytes = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        log.info("%s: request head not complete in %ss, closing", _peer(self), self.head_timeout_s)
        self._refuse(408)

    def _count(self, nbytes: int) -> None:
        self._head_bytes += nbytes
        if self._head_bytes > self.max_head_bytes:
            log.info("%s: request head over %d bytes, closing", _peer(self), self.max_head_bytes)
            self._refused = 431
            raise _HeadTooBig  # stops the parser; data_received then calls send_400_response

    # --- the body ---------------------------------------------------------------------------

    def _stop_body_clock(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        log.info(
            "%s: request body of %s %s not complete in %ss, closing",
            _peer(self),
            self.scope.get("method", "?"),
            self.scope.get("path", "?"),
            self.body_timeout_s,
        )
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # too late for a status: the answer is on its way
        else:
            self._refuse(408)

    # --- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_clock()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._stop_head_clock()
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            # A request without a body completes right after this, stopping the clock.
            self._stop_body_clock()
            self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_timed_out)

    def on_message_complete(self) -> None:
        self._stop_body_clock()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refused is not None:
            self._refuse(self._refused)
        else:
            super().send_400_response(msg)

    def _refuse(self, status: int) -> None:
        self._stop_head_clock()
        self._stop_body_clock()
        reason = _STATUS[status]
        retry = b"retry-after: 1\r\n" if status == 503 else b""
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\n%sconnection: close\r\n\r\n%s"
            % (status, reason, len(reason), retry, reason)
        )
        self.transport.close()


def _peer(protocol: HttpToolsProtocol) -> str:
    client = protocol.client
    return f"{client[0]}:{client[1]}" if client else "unknown"
