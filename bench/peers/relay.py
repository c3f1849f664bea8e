"""The floor: a y-websocket relay on plain `websockets`, with no CRDT and no storage.

    python relay.py --host 127.0.0.1 --port 8000 [--loop uvloop|asyncio]

One room per URL path. For each binary frame:

- sync step 1 (varuint 0, then 0): answered with sync step 2 holding an empty update
  (`00 01 02 00 00`), so a y-websocket client becomes synced;
- sync step 2 or update (0, then 1 or 2) and awareness (1): sent as received to the room's
  other sockets with `websockets.broadcast()` (no echo to the sender);
- anything else is ignored.

It does what every y-websocket server must do at the least for each frame (read it, look at
two bytes, write it to the other sockets), so coscribe's distance to it is the cost of
everything else: checking and applying the update, storing it, the ASGI stack. It holds no
document, so a client joining a room gets nothing of what was written before it came.

`broadcast()` has no backpressure: a socket that cannot keep up buffers without bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict

from websockets.asyncio.server import ServerConnection, broadcast, serve

EMPTY_STEP2 = b"\x00\x01\x02\x00\x00"
MAX_FRAME_BYTES = 256 * 1024 * 1024

rooms: defaultdict[str, set[ServerConnection]] = defaultdict(set)


async def handler(ws: ServerConnection) -> None:
    path = ws.request.path if ws.request is not None else "/"
    room = rooms[path]
    room.add(ws)
    try:
        async for message in ws:
            if not isinstance(message, bytes) or not message:
                continue
            # A varuint below 128 is one byte, so comparing single bytes is exact here.
            kind = message[0]
            if kind == 0 and len(message) > 1:
                sub = message[1]
                if sub == 0:
                    await ws.send(EMPTY_STEP2)
                elif sub in (1, 2):
                    broadcast([c for c in room if c is not ws], message)
            elif kind == 1:
                broadcast([c for c in room if c is not ws], message)
    finally:
        room.discard(ws)
        if not room:
            del rooms[path]


async def main(host: str, port: int) -> None:
    async with serve(handler, host, port, max_size=MAX_FRAME_BYTES, compression=None) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(json.dumps({"event": "ready", "port": bound}), flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop (default uvloop, the loop coscribe runs on under uvicorn)",
    )
    args = parser.parse_args()
    run = asyncio.run
    if args.loop == "uvloop":
        import uvloop

        run = uvloop.run
    try:
        run(main(args.host, args.port))
    except KeyboardInterrupt:
        sys.exit(0)
