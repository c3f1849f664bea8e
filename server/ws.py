"""The websocket endpoint: check the origin, the limits and the token, admit the socket to
the note, then hand the room each frame in order.

Every refusal happens after the upgrade, as a close code: a browser never sees the HTTP
status of a refused handshake, but it does see the close code and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from urllib.parse import urlsplit

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from crdt import protocol
from crdt.document import InvalidUpdate, UpdateRefused
from persistence.ids import is_id

from . import closecodes, logs
from .admission import admission, admit_live
from .auth import Principal, Refused, socket_token
from .connection import Connection
from .health import STORAGE_ERRORS
from .output import EXTENSION, FRAMES_PER_TURN, Output, QueuedOutput
from .rate import Rate
from .registry import NoteUnavailable
from .room import NoteFull
from .services import services
from .settings import Settings

log = logging.getLogger("coscribe.ws")

CLOSE_WAIT_S = 5


def origin_allowed(websocket: WebSocket, allowed: frozenset[str]) -> bool:
    """Same origin, or one the settings allow. A socket without an Origin header comes from
    a program, not a page: the check protects visitors' browsers, which always send one."""
    origin = websocket.headers.get("origin")
    if origin is None or "*" in allowed or origin.rstrip("/") in allowed:
        return True
    return urlsplit(origin).netloc.lower() == websocket.headers.get("host", "").lower()


class NoteSocket:
    """The endpoint as a plain ASGI app rather than a function endpoint: Starlette wraps a
    function in two closures and an exception-handling layer whose frames each open socket
    would keep suspended for its whole life; no exception handler applies to a socket."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await note_socket(WebSocket(scope, receive, send))


async def note_socket(websocket: WebSocket) -> None:
    app = services(websocket.app)
    settings = app.settings
    client = websocket.client
    address = client.host if client else "unknown"
    peer = f"{address}:{client.port}" if client else "unknown"
    # Every log line of this socket's task names it (JSON logs: server/logs.py).
    logs.CONNECTION.set(peer)
    logs.NOTE.set(str(websocket.path_params.get("note_id", ""))[:140] or None)
    token, subprotocol = socket_token(
        websocket.query_params, websocket.scope.get("subprotocols", [])
    )
    await websocket.accept(subprotocol)
    with app.addresses.hold(address) as held:
        try:
            async with asyncio.timeout(settings.storage_wait_s):
                admitted = await _admit(websocket, settings, peer, token, held)
        except STORAGE_ERRORS as exc:
            # The token or the note could not be read: an outage, not the client's fault.
            app.health.failed(exc, write=False)
            return await _refuse(websocket, peer, closecodes.INTERNAL, "storage unavailable")
        if admitted is not None:
            await _session(websocket, settings, peer, *admitted)


async def _refuse(websocket: WebSocket, peer: str, code: int, why: str) -> None:
    log.info("%s: refused (%d): %s", peer, code, why)
    if code in (closecodes.UNAUTHORIZED, closecodes.FORBIDDEN):
        # y-websocket reports a permission-denied message to its application.
        with contextlib.suppress(OSError, RuntimeError):
            await websocket.send_bytes(protocol.auth_denied(closecodes.REASONS[code]))
    await websocket.close(code, closecodes.REASONS.get(code, why)[:120])


async def _admit(
    websocket: WebSocket, settings: Settings, peer: str, token: str | None, held: int
) -> tuple[str, Principal] | None:
    """Check limits, origin, note id, token and access; refuse (and None) or admit."""
    app = services(websocket.app)
    registry = app.rooms
    auth = app.auth
    note_id = websocket.path_params["note_id"]
    if held > settings.max_connections_per_address:
        return await _refuse(websocket, peer, closecodes.TRY_AGAIN_LATER, "too many sockets")
    if not origin_allowed(websocket, settings.origins):
        origin = websocket.headers.get("origin", "")[:200]
        return await _refuse(websocket, peer, closecodes.POLICY, f"origin {origin!r}")
    if not is_id(note_id):
        return await _refuse(websocket, peer, closecodes.BAD_NOTE_ID, f"note id {note_id[:140]!r}")
    try:
        principal = await auth.principal(token, peer)
    except Refused as exc:
        return await _refuse(websocket, peer, closecodes.UNAUTHORIZED, str(exc))

    live = registry.live(note_id)
    if live is not None and live.workspace_id is not None:
        decision = admit_live(live.workspace_id, principal)
    else:
        decision = await admission(app.db, note_id, principal, settings.create_missing_notes)
    if decision.close_code is not None:
        why = f"{principal} on note {note_id}: {decision.value}"
        return await _refuse(websocket, peer, decision.close_code, why)
    return note_id, principal


def _output(websocket: WebSocket) -> Output:
    """The socket's transport when the server offers it (output.DirectWebSocketProtocol),
    else frames queued through ASGI's send."""
    direct = websocket.scope.get("extensions", {}).get(EXTENSION)
    if direct is not None:
        return direct
    return QueuedOutput(websocket.send_bytes)


async def _session(
    websocket: WebSocket, settings: Settings, peer: str, note_id: str, principal: Principal
) -> None:
    """Join the note's room and hand it each frame in order until the socket ends."""
    registry = services(websocket.app).rooms

    async def close(code: int, reason: str) -> None:
        await websocket.close(code, reason)

    output = _output(websocket)
    connection = Connection(
        note_id,
        peer,
        output,
        close,
        max_bytes=settings.send_queue_bytes,
        principal=principal,
    )
    try:
        room = await registry.join(note_id, connection)
    except NoteUnavailable as exc:
        log.info("%s: note %s unavailable: %s", peer, note_id, exc)
        await websocket.close(exc.code, exc.reason)
        return

    rate = Rate(settings.max_updates_per_s, settings.update_burst)
    traffic = registry.traffic

    def handle(frame: bytes) -> bool:
        """One binary message for the room; False once the connection is closing."""
        if connection.close_code is not None:
            return False  # closing: what the client sent after the refusal is not read
        try:
            decoded = protocol.decode(frame)
            traffic.received(type(decoded).__name__, len(frame))
            # Every message counts, not only those that cost the room work: a step 1 is
            # answered with the whole document, and a flood of ignored messages (unknown
            # types) still holds the event loop and this socket's reader.
            if not rate.take():
                log.warning("%r: over %d messages/s, closing", connection, rate.rate)
                connection.abort(closecodes.POLICY, "too many messages per second")
                return False
            room.receive(connection, decoded)
        except UpdateRefused as exc:
            # Refused before pycrdt read it: nothing applied, stored or broadcast.
            code = closecodes.TOO_BIG if exc.too_big else closecodes.INVALID_PAYLOAD
            log.warning("%r: update refused (%s: %s), closing", connection, exc.limit, exc)
            connection.abort(code, f"update refused: {exc.limit}")
            return False
        except (protocol.ProtocolError, InvalidUpdate) as exc:
            log.info("%r: bad frame (%s), closing", connection, exc)
            connection.abort(closecodes.INVALID_PAYLOAD)
            return False
        except NoteFull as exc:
            log.warning("%r: %s, closing", connection, exc)
            connection.abort(closecodes.TOO_BIG, "note size limit reached")
            return False
        return True

    def heard(frame: bytes) -> None:
        # Called by the socket's protocol as each frame is parsed, outside this task: the
        # task's context (its log fields) is entered for it, and a bug closes this socket
        # with 1011 rather than escaping into the event loop.
        try:
            context.run(handle, frame)
        except Exception:
            log.exception("%r: frame handling failed, closing", connection)
            connection.abort(closecodes.INTERNAL)

    context = contextvars.copy_context()
    # Under coscribe's server, frames go to heard() as they are parsed: no queue and no task
    # switch per frame, and this task only waits for a text frame or the end of the socket.
    output.listen(heard)
    handled = 0
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
            if not handle(frame):
                break
            # receive() returns at once while frames are buffered: yield every few frames so
            # other sockets are served during one client's burst, not after all of them. Not
            # after every frame: the updates of one turn go out as one frame per connection
            # (Room.send_update), so a burst costs the room's readers a write per slice.
            handled += 1
            if handled % FRAMES_PER_TURN == 0 and output.inbound():
                await asyncio.sleep(0)
    except WebSocketDisconnect:
        pass
    finally:
        if connection.close_code is None:
            await connection.stop()
        await registry.leave(room, connection)
        # An aborted connection closes in a task of its own; returning before it finished
        # would make the server drop the socket without the close code.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT_S):
                await connection.closed.wait()
