"""Bus: what one instance's rooms change goes to the other instances through Redis streams.

One stream per note (``{prefix}note:{id}``). The bus is a sink of every room (section 3 of the
design): `publish` queues the update and returns; one writer task sends what is queued with
pipelined XADDs, trimming each stream to the last ``cluster_window_s`` (MINID, approximate) and
letting a quiet note's stream expire. One reader task reads the streams of every note open here
with one blocking XREAD and applies what other instances wrote: updates to the room's document
(sent to its connections, neither stored nor published again: the instance where an update was
made stores it), awareness states under an owner naming the instance and its connection.

Nothing is lost between the stored log and the stream:

- a room opened here loads storage, then replays the stream's tail (what its origin may not have
  stored yet), then reads on from the tail's last entry;
- then, and whenever Redis comes back after an outage, it publishes its state vector (``s``);
  every instance with the note open answers with what the asker lacks and its own state vector
  (``r``), which the asker answers the same way. So rooms converge after anything the stream
  did not carry: an outage, updates dropped when Redis fell behind, a Redis restarted empty;
- instances beat (a key with a 3-beat expiry). When one stops, the others remove its clients'
  presence, and store what only it may have held: for each note it sent updates to, an
  instance that has the note open appends whatever its document has that storage lacks (under
  the note's advisory lock, so two survivors do not both append it).

Redis failing never blocks the loop or a local broadcast: publishing is an append to a bounded
queue, the reader and writer back off, and the state (``/health``'s ``redis``) changes with
one log line per change.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from crdt.document import InvalidUpdate, UpdateRefused

from ..connection import Connection
from .entries import AWARENESS, REPLY, SYNC, UPDATE, BadEntry, Entry, decode

if TYPE_CHECKING:
    from ..room import Room
    from ..settings import Settings

log = logging.getLogger("coscribe.cluster")

EMPTY_UPDATE = b"\x00\x00"
STARTING, OK, DOWN = "starting", "ok", "down"
REDIS_ERRORS = (RedisError, OSError)

READ_BLOCK_MS = 250  # a newly opened note joins the next XREAD at most this late
READ_COUNT = 512
WRITE_BATCH = 256
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.2, 5.0
TAIL_TIMEOUT_S = 2.0  # opening a note waits this long for its stream's tail at most
STOP_FLUSH_S = 2.0
BAD_ENTRY_LOG_S = 60.0  # one line per note per minute about entries that are skipped


class Bus:
    def __init__(
        self,
        settings: Settings,
        rooms: Mapping[str, Room],
        *,
        max_entry_bytes: int,
    ) -> None:
        assert settings.redis_url is not None
        self.instance = f"{socket.gethostname()[:32]}-{os.getpid()}-{secrets.token_hex(4)}"
        self.prefix = settings.redis_prefix
        self.window_ms = settings.cluster_window_s * 1000
        self.heartbeat_s = settings.cluster_heartbeat_s
        self.max_queue_bytes = settings.cluster_queue_bytes
        self.max_entry_bytes = max_entry_bytes
        self.rooms = rooms
        # Called with the notes a dead instance sent updates to (set by Services).
        self.on_peer_dead: Callable[[list[str]], Awaitable[None]] | None = None
        # Commands fail at once when Redis is away: the loops back off, nobody else waits.
        self.redis = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=5,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )
        self.state, self.since, self.error = STARTING, time.time(), None
        self._up_at = 0.0  # monotonic, when Redis last came up
        self._rewind = False  # check the streams' ids once Redis is back
        self._watched: dict[str, bytes | str] = {}  # stream key -> last entry id read
        # Note keys another program made into something else than a stream: left out of the
        # XREAD (one such key fails it for every note) until they are a stream again.
        self._foreign: dict[str, bytes | str] = {}
        self._queue: collections.deque[tuple[str, Entry]] = collections.deque()
        self._queued_bytes = 0
        self._behind: set[str] = set()  # notes whose updates were dropped: re-sync them
        self._wake = asyncio.Event()
        self._redis_ms = 0  # Redis's clock, from the ids it gives entries: trimming uses it
        self._sources: dict[str, set[str]] = {}  # note -> instances that sent it updates
        self._peers: set[str] = set()
        self._bad_logged: dict[str, float] = {}
        self.skipped = 0  # entries read that were not applied (malformed, refused)

    # --- keys -----------------------------------------------------------------------------

    def stream(self, note_id: str) -> str:
        return f"{self.prefix}note:{note_id}"

    def _beat_key(self, instance: str) -> str:
        return f"{self.prefix}instance:{instance}"

    # --- the sink and relay of every room ---------------------------------------------------

    def publish(self, room: Room, update: bytes) -> None:
        self._send(room.note_id, Entry(self.instance, UPDATE, update))

    def awareness(self, room: Room, connection: Connection, payload: bytes) -> None:
        # id() names the connection while it lives; its removal is sent before it goes.
        self._send(room.note_id, Entry(self.instance, AWARENESS, payload, id(connection)))

    def _send(self, note_id: str, entry: Entry) -> None:
        if self.state == DOWN:
            return  # re-synced when Redis is back
        if self._queued_bytes + len(entry.data) > self.max_queue_bytes:
            if note_id not in self._behind:
                log.warning("Redis is behind: dropping updates of note %s for now", note_id)
            self._behind.add(note_id)
            return
        self._queue.append((note_id, entry))
        self._queued_bytes += len(entry.data)
        self._wake.set()

    def _sync(self, room: Room) -> None:
        """Ask the other instances for what they have of the note that this one lacks."""
        self._send(room.note_id, Entry(self.instance, SYNC, room.doc.get_state()))

    # --- rooms opening and closing ----------------------------------------------------------

    async def opened(self, room: Room) -> None:
        """A room was loaded from storage (and is not served yet): replay the stream's tail,
        read on from there, and ask the other instances for anything else."""
        key = self.stream(room.note_id)
        last: bytes | str = f"{self._redis_ms}-0" if self._redis_ms else "$"
        if self.state != DOWN:
            try:
                async with asyncio.timeout(TAIL_TIMEOUT_S):
                    tail = await self.redis.xrange(key, "-", "+")
            except TimeoutError:
                log.warning("note %s: Redis did not give the stream's tail in time", room.note_id)
            except ResponseError as exc:  # the key is not a stream: the reader sets it aside
                self._skipped(room.note_id, exc, "could not read")
            except REDIS_ERRORS as exc:
                self._down(exc)
            else:
                for entry_id, fields in tail:
                    last = entry_id
                    self._receive(room.note_id, fields, room, replay=True)
        if last == "$":
            last = f"{int(time.time() * 1000)}-0"
        self._watched[key] = last
        self._sync(room)

    def closed(self, note_id: str) -> None:
        self._watched.pop(self.stream(note_id), None)
        self._foreign.pop(self.stream(note_id), None)
        self._sources.pop(note_id, None)
        self._behind.discard(note_id)

    # --- what other instances wrote ----------------------------------------------------------

    def _receive(
        self,
        note_id: str,
        fields: Mapping[bytes, bytes],
        room: Room | None = None,
        *,
        replay: bool = False,
    ) -> None:
        try:
            entry = decode(fields, self.max_entry_bytes)
        except BadEntry as exc:
            self._skipped(note_id, exc)
            return
        if entry.origin == self.instance:
            return
        self._peers.add(entry.origin)
        room = room or self.rooms.get(note_id)
        if room is None:
            return
        if entry.kind == UPDATE:
            self._sources.setdefault(note_id, set()).add(entry.origin)
            try:
                room.apply_remote(entry.data)
            except (UpdateRefused, InvalidUpdate) as exc:
                self._skipped(note_id, exc)
                if not replay:
                    self._sync(room)  # it may have needed something this room missed
        elif entry.kind == AWARENESS:
            room.remote_awareness((entry.origin, entry.connection), entry.awareness())
        elif replay:
            return  # questions in the tail are old: their askers have their answers
        elif entry.kind == SYNC:
            self._answer(room, entry.data)
            reply = Entry(self.instance, REPLY, room.doc.get_state(), to=entry.origin)
            self._send(note_id, reply)
            for connection, payload in room.local_awareness():
                self.awareness(room, connection, payload)
        elif entry.kind == REPLY and entry.to == self.instance:
            self._answer(room, entry.data)

    def _answer(self, room: Room, state_vector: bytes) -> None:
        """Send what this room has that a room at this state vector lacks (its delete set
        included: a state vector does not tell deletions)."""
        update = room.doc.get_update(state_vector)
        if update != EMPTY_UPDATE:
            self._send(room.note_id, Entry(self.instance, UPDATE, update))

    def _skipped(self, note_id: str, error: Exception, what: str = "skipped an entry of") -> None:
        self.skipped += 1
        now = time.monotonic()
        if now - self._bad_logged.get(note_id, -BAD_ENTRY_LOG_S) >= BAD_ENTRY_LOG_S:
            self._bad_logged[note_id] = now
            log.warning("note %s: %s its Redis stream: %s", note_id, what, error)

    # --- the loops ----------------------------------------------------------------------------

    async def read(self) -> None:
        """Read the streams of every note open here, one XREAD for all, for ever."""
        backoff = BACKOFF_MIN_S
        while True:
            if not self._watched:
                await asyncio.sleep(READ_BLOCK_MS / 1000)  # the heartbeat watches Redis
                continue
            try:
                replies = await self.redis.xread(
                    dict(self._watched), count=READ_COUNT, block=READ_BLOCK_MS
                )
            except ResponseError as exc:  # Redis answered: a key is not a stream
                await self._set_aside(exc)
                continue
            except REDIS_ERRORS as exc:
                self._down(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_MIN_S
            self._up()
            if self._rewind:
                await self._rewind_streams()
            for key, entries in replies or ():
                name = key.decode() if isinstance(key, bytes) else key
                if name not in self._watched:
                    continue  # closed meanwhile
                note_id = self._note_id(name)
                for entry_id, fields in entries:
                    self._watched[name] = entry_id
                    self._receive(note_id, fields)

    async def _set_aside(self, error: ResponseError) -> None:
        """Find the note keys that are not streams, and read without them."""
        for key in list(self._watched):
            kind = await self.redis.type(key)
            if kind not in (b"stream", b"none", "stream", "none"):
                self._foreign[key] = self._watched.pop(key)
                log.warning(
                    "note %s: its Redis key holds a %s, not a stream (%s): the note is not "
                    "shared with other instances until it is a stream again",
                    self._note_id(key),
                    kind.decode() if isinstance(kind, bytes) else kind,
                    error,
                )
        if not self._foreign:
            raise error  # not a key's fault after all: the loop backs off

    async def _take_back(self) -> None:
        """Note keys set aside that are streams again (or gone) are read again."""
        for key in list(self._foreign):
            kind = await self.redis.type(key)
            if kind in (b"stream", b"none", "stream", "none"):
                self._watched[key] = self._foreign.pop(key)
                log.warning("note %s: its Redis key is a stream again", self._note_id(key))

    def _note_id(self, key: str) -> str:
        return key[len(self.prefix) + len("note:") :]

    async def _rewind_streams(self) -> None:
        """After an outage: a Redis restarted empty starts streams afresh, and one whose clock
        is behind ours may give ids below those read before. Read such streams from their
        start, so the answers to this instance's re-sync are not skipped."""
        self._rewind = False
        for key, last in list(self._watched.items()):
            newest = await self.redis.xrevrange(key, count=1)
            if not newest or _entry_id(newest[0][0]) < _entry_id(last):
                self._watched[key] = "0-0"

    async def write(self) -> None:
        """Send what is queued, in order, a pipeline at a time."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._take()
                try:
                    await self._write(batch)
                except REDIS_ERRORS as exc:
                    self._down(exc)
                    break
            if not self._queue and self._behind and self.state != DOWN:
                behind, self._behind = self._behind, set()
                for note_id in behind:
                    room = self.rooms.get(note_id)
                    if room is not None:
                        self._sync(room)

    def _take(self) -> list[tuple[str, Entry]]:
        batch = [self._queue.popleft() for _ in range(min(WRITE_BATCH, len(self._queue)))]
        self._queued_bytes -= sum(len(entry.data) for _, entry in batch)
        return batch

    async def _write(self, batch: list[tuple[str, Entry]]) -> None:
        minid = f"{self._redis_ms - self.window_ms}-0" if self._redis_ms > self.window_ms else None
        keys = set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for note_id, entry in batch:
                key = self.stream(note_id)
                keys.add(key)
                pipe.xadd(key, entry.fields(), minid=minid, approximate=True)
            for key in keys:  # a quiet note's stream goes: its tail is stored by then
                pipe.pexpire(key, 2 * self.window_ms)
            # One note's key of another type fails its commands, not the batch.
            results = await pipe.execute(raise_on_error=False)
        for (note_id, _), result in zip(batch, results, strict=False):
            if isinstance(result, ResponseError):
                self._skipped(note_id, result, "could not add to")
            elif isinstance(result, Exception):
                raise result
            else:
                self._redis_ms = _entry_ms(result, self._redis_ms)

    async def beat(self) -> None:
        """Say this instance is alive; find the instances that are not any more."""
        while True:
            try:
                await self.redis.set(
                    self._beat_key(self.instance), b"1", px=3 * self.heartbeat_s * 1000
                )
                self._up()
                # Right after Redis came back (empty, perhaps) others may not have beaten yet.
                if time.monotonic() - self._up_at >= 2 * self.heartbeat_s:
                    await self._check_peers()
                if self._foreign:
                    await self._take_back()
            except REDIS_ERRORS as exc:
                self._down(exc)
            await asyncio.sleep(self.heartbeat_s)

    async def _check_peers(self) -> None:
        peers = sorted(self._peers)
        if not peers:
            return
        beats = await self.redis.mget([self._beat_key(peer) for peer in peers])
        for peer, beat in zip(peers, beats, strict=True):
            if beat is None:
                await self._peer_dead(peer)

    async def _peer_dead(self, peer: str) -> None:
        self._peers.discard(peer)
        for room in list(self.rooms.values()):
            room.forget_owners(lambda owner: isinstance(owner, tuple) and owner[0] == peer)
        notes = [note_id for note_id, origins in self._sources.items() if peer in origins]
        for note_id in notes:
            self._sources[note_id].discard(peer)
        log.warning(
            "instance %s stopped beating: its clients' presence is removed%s",
            peer,
            f"; storing what it may not have stored of {len(notes)} notes" if notes else "",
        )
        if notes and self.on_peer_dead is not None:
            await self.on_peer_dead(notes)

    # --- state ----------------------------------------------------------------------------------

    def _up(self) -> None:
        if self.state == OK:
            return
        was = self.state
        self.state, self.since, self.error = OK, time.time(), None
        self._up_at = time.monotonic()
        if was == DOWN:
            log.warning("Redis is back: re-syncing %d open notes", len(self.rooms))
            for room in list(self.rooms.values()):
                self._sync(room)
        else:
            log.info("cluster: instance %s on Redis", self.instance)

    def _down(self, error: BaseException) -> None:
        self.error = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        if self.state == DOWN:
            return
        self.state, self.since = DOWN, time.time()
        self._rewind = True
        log.error("Redis unavailable (%s): serving local clients only until it is back", self.error)
        self._queue.clear()
        self._queued_bytes = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since,
            "error": self.error,
            "instance": self.instance,
            "peers": len(self._peers),
            "skipped_entries": self.skipped,
        }

    async def close(self) -> None:
        """Send what is queued (briefly), say this instance is gone, and disconnect."""
        if self.state != DOWN:
            try:
                async with asyncio.timeout(STOP_FLUSH_S):
                    while self._queue:
                        await self._write(self._take())
                    await self.redis.delete(self._beat_key(self.instance))
            except (TimeoutError, *REDIS_ERRORS) as exc:
                log.warning("cluster: could not say goodbye on Redis: %s", exc)
        await self.redis.aclose()


def _entry_id(entry_id: object) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms, _, seq = text.partition("-")
    return (int(ms), int(seq or 0)) if ms.isdigit() and (seq or "0").isdigit() else (0, 0)


def _entry_ms(entry_id: object, default: int) -> int:
    return _entry_id(entry_id)[0] or default
