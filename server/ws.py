"""The websocket endpoint: validate the note id, join the room, hand it each frame in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from starlette.websockets import WebSocket, WebSocketDisconnect

from crdt import protocol
from crdt.document import InvalidUpdate

from . import closecodes
from .connection import Connection
from .registry import NoteUnavailable, RoomRegistry

log = logging.getLogger("coscribe.ws")

CLOSE_WAIT_S = 5
NOTE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


async def note_socket(websocket: WebSocket) -> None:
    registry: RoomRegistry = websocket.app.state.rooms
    settings = websocket.app.state.settings
    note_id = websocket.path_params["note_id"]
    client = websocket.client
    peer = f"{client.host}:{client.port}" if client else "unknown"
    await websocket.accept()
    if not NOTE_ID.fullmatch(note_id):
        log.info("%s: refused invalid note id %r", peer, note_id[:140])
        await websocket.close(closecodes.BAD_NOTE_ID, closecodes.REASONS[closecodes.BAD_NOTE_ID])
        return

    async def send_bytes(frame: bytes) -> None:
        await websocket.send_bytes(frame)

    async def close(code: int, reason: str) -> None:
        await websocket.close(code, reason)

    connection = Connection(
        note_id,
        peer,
        send_bytes,
        close,
        max_frames=settings.send_queue_frames,
        max_bytes=settings.send_queue_bytes,
    )
    try:
        room = await registry.join(note_id, connection)
    except NoteUnavailable as exc:
        log.info("%s: note %s unavailable: %s", peer, note_id, exc)
        await websocket.close(exc.code, str(exc)[:120])
        return

    try:
        while connection.close_code is None:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            frame = message.get("bytes")
            if frame is None:
                log.info("%r: text frame, closing", connection)
                connection.abort(closecodes.UNSUPPORTED_DATA)
                break
            try:
                room.receive(connection, protocol.decode(frame))
            except (protocol.ProtocolError, InvalidUpdate) as exc:
                log.info("%r: bad frame (%s), closing", connection, exc)
                connection.abort(closecodes.INVALID_PAYLOAD)
                break
            # receive() returns at once while frames are buffered: yield so the room's writers
            # drain between the frames of a burst instead of after all of them.
            await asyncio.sleep(0)
    except WebSocketDisconnect:
        pass
    finally:
        if connection.close_code is None:
            await connection.stop_writer()
        await registry.leave(room, connection)
        # An aborted connection closes in a task of its own; returning before it finished
        # would make the server drop the socket without the close code.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT_S):
                await connection.closed.wait()
