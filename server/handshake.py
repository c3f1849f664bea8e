"""Request heads under a time and size limit: uvicorn's HTTP protocol with a guard.

Every HTTP request and every websocket upgrade starts with a request head. A client that
opens a connection and sends its head slowly, or never, or sends an endless one, would hold
a socket and memory for free (slowloris). Here the head must be complete within
handshake_timeout_s (else 408 and close) and within max_handshake_bytes (else 431 and close).
The clock starts when the connection opens and again when a kept-alive connection begins its
next request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("coscribe.handshake")

_STATUS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _HeadTooBig(Exception):
    pass


class GuardedHttpProtocol(HttpToolsProtocol):
    head_timeout_s: float = 10.0
    max_head_bytes: int = 16 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused: int | None = None

    @classmethod
    def configured(cls, head_timeout_s: float, max_head_bytes: int) -> type[GuardedHttpProtocol]:
        return type(
            cls.__name__,
            (cls,),
            {"head_timeout_s": head_timeout_s, "max_head_bytes": max_head_bytes},
        )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

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

    # Parser callbacks.
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

    def send_400_response(self, msg: str) -> None:
        if self._refused is not None:
            self._refuse(self._refused)
        else:
            super().send_400_response(msg)

    def _refuse(self, status: int) -> None:
        self._stop_head_clock()
        reason = _STATUS[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, reason, len(reason), reason)
        )
        self.transport.close()


def _peer(protocol: HttpToolsProtocol) -> str:
    client = protocol.client
    return f"{client[0]}:{client[1]}" if client else "unknown"
