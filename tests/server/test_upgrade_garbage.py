"""A socket's upgrade leaves no garbage for the cycle collector: uvicorn's HTTP protocol and
its parser hold each other, so each upgraded connection left a dozen objects (protocol,
parser, flow control, events, bound methods) until the next collector pass, and a thousand
upgrades made a young-generation pass of 18-40 ms under load. Real uvicorn, real sockets, in
this process so its objects can be counted."""

from __future__ import annotations

import asyncio
import gc

import uvicorn
import websockets

from server.handshake import GuardedHttpProtocol
from server.output import DirectWebSocketProtocol
from tests.processes import free_port

SOCKETS = 20


async def _accepting_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


def _http_protocols() -> int:
    """HTTP protocol objects alive or waiting for the collector."""
    return sum(isinstance(o, GuardedHttpProtocol) for o in gc.get_objects())


async def test_an_upgraded_connection_leaves_no_http_protocol_behind():
    port = free_port()
    config = uvicorn.Config(
        _accepting_app,
        host="127.0.0.1",
        port=port,
        http=GuardedHttpProtocol.configured(10, 16 * 1024),
        ws=DirectWebSocketProtocol,
        ws_per_message_deflate=False,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    sockets = []
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        gc.collect()
        gc.disable()  # what is left must be freed by reference counting alone
        try:
            before = _http_protocols()
            for _ in range(SOCKETS):
                sockets.append(await websockets.connect(f"ws://127.0.0.1:{port}/"))
            for socket in sockets:  # the upgrade went through: the socket works
                await socket.ping()
            assert _http_protocols() == before
        finally:
            gc.enable()
    finally:
        for socket in sockets:
            await socket.close()
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
