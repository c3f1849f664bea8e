"""pycrdt-websocket as a standalone server for bench/run.py (run in bench/.venv-peers).

    python pycrdt_server.py --host 127.0.0.1 --port 8000

The documented ASGI setup: one WebsocketServer (in memory, rooms removed when their last
client leaves) behind ASGIServer under uvicorn; the room name is the URL path. Exceptions in
a room are logged (pycrdt's exception_logger), not raised, so one bad client does not stop it.
Prints one JSON line {"event": "ready", ...} on stdout once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import sys

import uvicorn
from pycrdt.websocket import ASGIServer, WebsocketServer, exception_logger


class Server(uvicorn.Server):
    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        port = self.servers[0].sockets[0].getsockname()[1] if self.servers else None
        versions = {
            name: importlib.metadata.version(name)
            for name in ("pycrdt-websocket", "pycrdt", "uvicorn", "websockets")
        }
        print(json.dumps({"event": "ready", "port": port, "versions": versions}), flush=True)


async def main(host: str, port: int) -> None:
    websocket_server = WebsocketServer(exception_handler=exception_logger)
    app = ASGIServer(websocket_server)
    # A short graceful shutdown: a room hung by a client (see bench/README.md) would otherwise
    # keep the server from exiting on SIGTERM.
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    async with websocket_server:
        await Server(config).serve()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.host, args.port))
    except KeyboardInterrupt:
        sys.exit(0)
