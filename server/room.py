"""Room: one live note — its Doc, its connections and awareness, and the sinks it publishes to.

Everything here runs on the event loop and never awaits: a frame is handled from start to end
(validate, apply, publish) before the next one, which keeps each connection's frames in order
and makes the room's state easy to reason about.

What the document changed is published, as the doc's own update, to the room's sinks, in
order: the local broadcast to its connections first, then the Persister (and, in a cluster,
the bus). A sink takes the update and returns at once; none of them reaches back into the room.
Storage happens later, in the Persister, which owns everything about it (what is pending, in
flight, how long the log is); broadcast never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple, Protocol

import pycrdt

from crdt import protocol
from crdt.awareness import AwarenessLimits, AwarenessStates
from crdt.document import (
    InvalidUpdate,
    apply_update,
    decode_state_vector,
    encode_state_vector,
)
from crdt.protocol import (
    AwarenessEntry,
    AwarenessUpdate,
    Message,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
)
from crdt.validation import DepthTracker

from . import closecodes
from .connection import Connection
from .counters import UNCOUNTED, Traffic
from .output import Frame

log = logging.getLogger("coscribe.room")

EMPTY_UPDATE = b"\x00\x00"
EMPTY_STATE_VECTOR = b"\x00"


class NoteFull(Exception):
    """An update would grow the note past its size limit; it was not applied."""


class Sink(Protocol):
    """Takes what a room's document changed. Called synchronously, in order, on the loop."""

    def publish(self, room: Room, update: bytes) -> None: ...


class Relay(Protocol):
    """Takes awareness states of this room's own connections for the other instances of a
    cluster (the bus). Called synchronously on the loop."""

    def awareness(self, room: Room, connection: Connection, payload: bytes) -> None: ...


class RemoteOwner(NamedTuple):
    """Who holds awareness states announced on another instance of a cluster: that instance
    and its connection. Such states pass to a connection that announces the same client id
    with a newer clock (the client moved here when its instance died)."""

    instance: str
    connection: int


class Broadcast:
    """The local sink: every connection of the room gets the update, the sender included."""

    def publish(self, room: Room, update: bytes) -> None:
        room.send_update(update)


BROADCAST = Broadcast()


class Room:
    # What broadcasts cost, for /metrics: the registry gives its rooms the server's Traffic.
    traffic: Traffic = UNCOUNTED

    def __init__(
        self,
        note_id: str,
        doc: pycrdt.Doc,
        *,
        awareness_timeout_s: float,
        sinks: Sequence[Sink] = (BROADCAST,),
        size: int = 0,
        max_bytes: int | None = None,
        workspace_id: str | None = None,
        awareness_limits: AwarenessLimits | None = None,
        tracker: DepthTracker | None = None,
        relay: Relay | None = None,
    ) -> None:
        self.note_id = note_id
        self.workspace_id = workspace_id  # a note never changes workspace
        self.doc = doc
        self.connections: set[Connection] = set()
        self.awareness = AwarenessStates(
            awareness_timeout_s,
            awareness_limits,
            transferable=lambda owner: isinstance(owner, RemoteOwner),
        )
        self.sinks = tuple(sinks)
        self.relay = relay
        # Server-side users holding the room open (REST edits) besides its connections.
        self.leases = 0
        # Bytes of the note: its stored state and log when loaded, plus every update since.
        # An upper bound of its encoded state (a Yjs document only grows), kept without
        # encoding the document on every update.
        self.size = size
        self.max_bytes = max_bytes
        self._edited_at = 0.0
        self._versioned_at = time.monotonic()
        self._captured: list[bytes] = []
        # Updates applied in this turn of the event loop and not broadcast yet (send_update).
        self._outgoing: list[bytes] = []
        # The sync step 2 for a client that has nothing, until the doc changes.
        self._whole: Frame | None = None
        # Checks every foreign update before pycrdt reads it, and knows how deeply the doc's
        # items are nested (built when the note was loaded, crdt.document.load_tracked).
        if tracker is None:
            tracker = DepthTracker()
            tracker.record(doc.get_update())
        self.tracker = tracker
        # Whether the tracker's clocks are the doc's (they are, once built; checked because
        # _apply trusts them to tell an update that is all new from one that repeats some).
        self._exact = _clocks(tracker.ends) == decode_state_vector(doc.get_state())

    def __repr__(self) -> str:
        return f"<Room {self.note_id} connections={len(self.connections)}>"

    @property
    def idle(self) -> bool:
        """Nobody is connected and nobody borrowed the room."""
        return not self.connections and not self.leases

    def wants_version(self, interval_s: float) -> bool:
        """Edited since the last automatic version, and that was at least interval_s ago."""
        now = time.monotonic()
        return self._edited_at > self._versioned_at and now - self._versioned_at >= interval_s

    def mark_versioned(self) -> None:
        self._versioned_at = time.monotonic()

    # --- connections --------------------------------------------------------------------

    def join(self, connection: Connection) -> None:
        self.send_updates()  # a joiner syncs from the doc: it needs no earlier broadcast
        self.connections.add(connection)
        connection.send(protocol.sync_step1(self.doc.get_state()))
        # Bounded by the awareness limits, which the settings keep within a send queue.
        states = self.awareness.payload()
        if states is not None:
            connection.send(protocol.awareness(states))

    def leave(self, connection: Connection) -> None:
        """Forget a connection and the awareness states it owned. Idempotent."""
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        removed = self.awareness.remove_owner(connection, time.monotonic())
        if removed:
            message = protocol.awareness(protocol.awareness_payload(removed))
            self.broadcast(message)
            if self.relay is not None:
                self.relay.awareness(self, connection, protocol.awareness_payload(removed))

    def send_update(self, update: bytes) -> None:
        """Broadcast an update at the end of this turn of the event loop, merged with the
        others applied in it: a burst of small updates costs one frame per connection per turn
        instead of one per update. Anything else sent to the room's connections first sends
        what waits here, so each connection's frames keep their order. Outside a running loop
        (scripts, tests of the room alone) it is sent at once."""
        if not self._outgoing:
            try:
                asyncio.get_running_loop().call_soon(self.send_updates)
            except RuntimeError:
                self.broadcast(protocol.sync_update(update))
                return
        self._outgoing.append(update)

    def send_updates(self) -> None:
        """Broadcast the updates send_update holds, as one."""
        if not self._outgoing:
            return
        updates, self._outgoing = self._outgoing, []
        update = updates[0] if len(updates) == 1 else pycrdt.merge_updates(*updates)
        self._broadcast(protocol.sync_update(update))

    def broadcast(self, message: bytes) -> None:
        """Send one message to every connection, the sender included (the echo keeps a lone
        y-websocket client from timing out). Its websocket frame is built once and written to
        each socket without waiting; slow connections are dropped, not waited for."""
        self.send_updates()
        self._broadcast(message)

    def _broadcast(self, message: bytes) -> None:
        started = time.perf_counter()
        frame = Frame(message)
        dropped = []
        for connection in self.connections:
            connection.send(frame)
            if connection.close_code is not None:
                dropped.append(connection)
        # Once per broadcast, never per recipient.
        self.traffic.broadcast(len(message), len(self.connections), time.perf_counter() - started)
        for connection in dropped:
            self.leave(connection)

    # --- messages -----------------------------------------------------------------------

    def receive(self, connection: Connection, message: Message) -> None:
        """Handle one decoded frame. Raises InvalidUpdate for an update that does not apply."""
        match message:
            case SyncStep1(state_vector):
                self.send_updates()  # what the doc has now, after what this turn broadcast
                # step2 always (even empty), then our step1 so the client sends what we miss.
                connection.send(self._sync_step2(state_vector))
                connection.send(protocol.sync_step1(self.doc.get_state()))
            case SyncStep2(update) | SyncUpdate(update):
                if connection.read_only:
                    connection.dropped_updates += 1
                    if connection.dropped_updates == 1:
                        log.info("%r: read-only, dropping its updates", connection)
                    return
                self.apply(update)
            case AwarenessUpdate(entries):
                self._receive_awareness(connection, entries)
            case QueryAwareness():
                self.send_updates()
                states = self.awareness.payload()
                empty = protocol.awareness_payload(())
                connection.send(protocol.awareness(empty if states is None else states))
            case _:
                pass  # auth messages from clients and unknown types are ignored

    def _sync_step2(self, state_vector: bytes) -> Frame | bytes:
        if state_vector != EMPTY_STATE_VECTOR:
            return protocol.sync_step2(self.doc.get_update(state_vector))
        # A new client has nothing: every one that joins before the next change gets the same
        # frame, encoded once (a crowd joining a big note would encode it once per client).
        if self._whole is None:
            self._whole = Frame(protocol.sync_step2(self.doc.get_update()))
        return self._whole

    def _receive_awareness(
        self, connection: Connection, entries: tuple[protocol.AwarenessEntry, ...]
    ) -> None:
        # Every state a connection announces is its own, and goes when it leaves.
        applied = self.awareness.apply(entries, time.monotonic(), connection)
        if applied.refused:
            log.warning("%r: %s, closing", connection, applied.refused)
            connection.abort(closecodes.POLICY, "too many awareness entries")
            return
        if applied.dropped:
            # One line per connection: a client that keeps sending the same thing would
            # otherwise write one per message.
            report = log.debug if connection.awareness_dropped else log.info
            connection.awareness_dropped += applied.dropped.total()
            report(
                "%r: awareness entries dropped (%s)",
                connection,
                ", ".join(f"{count} {why}" for why, count in applied.dropped.items()),
            )
        if applied.changed:
            payload = protocol.awareness_payload(applied.changed)
            self.broadcast(protocol.awareness(payload))
            if self.relay is not None:
                self.relay.awareness(self, connection, payload)

    def remote_awareness(
        self, instance: str, connection: int, entries: Sequence[AwarenessEntry]
    ) -> None:
        """Awareness states of a connection of another instance: kept like a local
        connection's, sent to this room's connections, not relayed again."""
        owner = RemoteOwner(instance, connection)
        applied = self.awareness.apply(entries, time.monotonic(), owner)
        if applied.changed:
            self.broadcast(protocol.awareness(protocol.awareness_payload(applied.changed)))

    def forget_instance(self, instance: str) -> None:
        """Remove the awareness states of every connection of an instance that died."""
        removed = self.awareness.remove_owners(
            lambda owner: isinstance(owner, RemoteOwner) and owner.instance == instance,
            time.monotonic(),
        )
        if removed:
            self.broadcast(protocol.awareness(protocol.awareness_payload(removed)))

    def local_awareness(self) -> Iterator[tuple[Connection, bytes]]:
        """Each of this room's connections that has states, with them as one payload."""
        for connection in self.connections:
            payload = self.awareness.owned_payload(connection)
            if payload is not None:
                yield connection, payload

    def expire_awareness(self) -> None:
        removed = self.awareness.expire(time.monotonic())
        if removed:
            self.broadcast(protocol.awareness(protocol.awareness_payload(removed)))

    # --- document -----------------------------------------------------------------------

    def _make_room_for(self, nbytes: int) -> None:
        """Raise NoteFull if a change of nbytes may grow the note past its limit."""
        if self.max_bytes is not None and self.size + nbytes > self.max_bytes:
            raise NoteFull(
                f"note {self.note_id} would grow past its limit of {self.max_bytes} bytes"
            )

    def apply(self, update: bytes) -> None:
        """Apply an update from anyone (a socket, REST); publish what it changed.

        Raises NoteFull (nothing applied), UpdateRefused (the checks refused it before pycrdt
        saw it: nothing applied) or InvalidUpdate (pycrdt refused it)."""
        self._make_room_for(len(update))
        self._apply(update, self.sinks)

    def apply_remote(self, update: bytes) -> None:
        """Apply an update another instance of a cluster applied, and stores: what it changed
        goes to this room's connections only (not stored, not published again). Checked like
        a client's (the stream is not trusted to hold what pycrdt can read); no size limit:
        the instance that took it checked that, and refusing it here would split the note."""
        self._apply(update, (BROADCAST,), local=False)

    def _apply(self, update: bytes, sinks: Sequence[Sink], *, local: bool = True) -> None:
        checked = self.tracker.check(update)
        # What changed is published, never the update as sent: it may repeat what the doc
        # has. The common case needs no work: an update whose every struct continues its
        # client exactly where the doc ends, deleting nothing, is all new (the check refuses
        # gaps and missing dependencies, so nothing stays pending), and is what changed.
        # With deletions, only the doc's own update says exactly what changed: a delete set
        # may name what the doc deleted already, or items it does not have. Other inserts:
        # the part of the update the doc did not have, which is much cheaper than observing:
        # pycrdt builds a whole TransactionEvent for every observed transaction, 3x the
        # integration itself under concurrent writers (bench/observer.py).
        fresh = checked.fresh and self._exact
        known = self.tracker.ends
        before = None if checked.deletes or fresh else self.doc.get_state()
        try:
            with self._observed(checked.deletes > 0):
                apply_update(self.doc, update)
        except InvalidUpdate:
            # Refused half-way: the clocks are pycrdt's (depths recorded stay, an overestimate).
            if fresh:
                before = encode_state_vector(known)
            self.tracker.commit(checked)
            after = self.doc.get_state()
            self.tracker.resync(decode_state_vector(after))
            self._exact = True
            # What did integrate must still be stored and broadcast.
            if before is not None and after != before:
                self._capture(self.doc.get_update(before))
            raise
        else:
            self.tracker.commit(checked)
            if fresh:
                self._capture(bytes(update))
            elif before is not None:
                self._capture(pycrdt.get_update(update, before))
        finally:
            self._publish(sinks, local=local)

    @contextlib.contextmanager
    def _observed(self, observe: bool = True) -> Iterator[None]:
        """Capture the doc's own updates of the transactions made meanwhile."""
        if not observe:
            yield
            return
        subscription = self.doc.observe(self._on_transaction)
        try:
            yield
        finally:
            self.doc.unobserve(subscription)

    def _capture(self, update: bytes) -> None:
        # A transaction that changed nothing yields an empty update (b"\0\0"): for example a
        # duplicate, or an update whose items wait for missing ones. Nothing to store or send.
        if update != EMPTY_UPDATE:
            self._captured.append(update)

    def _on_transaction(self, event: pycrdt.TransactionEvent) -> None:
        # Called synchronously inside apply_update (and local edits) while observed: the doc's
        # own update holds exactly what changed. A duplicate or still-pending update yields no
        # transaction, so nothing is stored or broadcast twice.
        self._capture(event.update)

    def _publish(self, sinks: Sequence[Sink] | None = None, *, local: bool = True) -> None:
        captured, self._captured = self._captured, []
        if not captured:
            return
        self._whole = None
        for update in captured:
            self.size += len(update)
            for sink in self.sinks if sinks is None else sinks:
                sink.publish(self, update)
        if local:  # automatic versions are taken where the edits are made
            self._edited_at = time.monotonic()

    def edit(self, change: Callable[[pycrdt.Doc], None], nbytes: int) -> None:
        """Apply a server-side change (REST, restore) as one transaction on the live doc.

        ``nbytes`` bounds what the change adds (the text inserted, the state restored): it is
        checked against the note's size limit first, and NoteFull means nothing changed."""
        self._make_room_for(nbytes)
        with self._observed(), self.doc.transaction():
            change(self.doc)
        for update in self._captured:  # the server's own items: the tracker must know them
            self.tracker.record(update)
        self._publish()

    def close(self) -> None:
        """Nothing observes the doc between changes: nothing to let go of."""


def _clocks(ends: dict[int, int]) -> dict[int, int]:
    return {client: clock for client, clock in ends.items() if clock}
