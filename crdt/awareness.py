"""Awareness bookkeeping for one room: who is present, with which state, since when, and which
connection announced it.

The server holds no awareness state of its own (it is not a peer). It keeps the latest state of
every client so a newcomer sees who is there, removes the states a connection owned when it
closes, and times out states that were not renewed (clients renew every 15 s; Yjs drops states
after 30 s). Pure bookkeeping: callers pass the time and the owner in (any hashable; the room
passes the connection that sent the message).

Awareness is unauthenticated in Yjs: any peer may announce any client id with any state, as
many as it likes. Here every state belongs to the connection that announced it, whether in a
message of its own or among the entries of a multi-entry one, and the AwarenessLimits bound
what one owner and the whole room may hold, so what a newcomer is sent on joining is bounded:

- An entry that would change or remove a state another owner holds is dropped. Stock
  y-websocket clients echo every change they receive, others' states included, with the same
  clock: an echo changes nothing, so it is neither a claim nor dropped.
- There is no taking over, not even of a client's own id: a y-websocket client that
  reconnects keeps its id, and while the server has not noticed its old socket is gone, the
  new socket's changes to that id are dropped. That heals itself: the old socket's state is
  removed when it closes or times out (30 s without renewal), the removal is broadcast, and
  the client, which never lets a peer remove its own state, announces it again at once.
- Over a bound (too many ids for one owner, a state too big, the room full) the entry is
  dropped and counted in Applied.dropped; a message with more entries than the room may hold
  states is refused whole (no client sends one).
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from .lib0 import MAX_VAR_UINT, write_var_bytes, write_var_uint
from .protocol import AwarenessEntry

DEFAULT_TIMEOUT_S = 30.0

# Why an entry was dropped (keys of Applied.dropped).
FOREIGN = "owned by another connection"
TOO_MANY_IDS = "too many client ids for one connection"
TOO_BIG = "state too big"
ROOM_FULL = "the note's awareness is full"

# An entry on the wire besides its JSON: client id and clock (varUints of at most 8 bytes
# each, 53 bits), and the JSON's length (a varUint).
_ENTRY_OVERHEAD = 8 + 8


@dataclass(frozen=True, slots=True)
class AwarenessLimits:
    max_ids_per_owner: int = 8
    max_state_bytes: int = 8 * 1024  # a state's JSON, as the server sends it on
    max_states: int = 1000
    max_bytes: int = 512 * 1024  # every state's JSON together

    def max_payload_bytes(self) -> int:
        """The largest awareness payload with every state of a room (what a newcomer gets)."""
        per_entry = _ENTRY_OVERHEAD + len(write_var_uint(self.max_state_bytes))
        return len(write_var_uint(self.max_states)) + self.max_states * per_entry + self.max_bytes

    def max_frame_bytes(self) -> int:
        """The largest websocket frame carrying that payload (type, length, payload)."""
        payload = self.max_payload_bytes()
        return 1 + len(write_var_uint(payload)) + payload


@dataclass(slots=True)
class _State:
    clock: int
    state: object
    encoded: bytes  # the entry as it goes on the wire: client id, clock, JSON string
    size: int  # bytes of the JSON
    owner: Hashable
    renewed_at: float


@dataclass(slots=True)
class Applied:
    """What an inbound message did: the entries to broadcast, and what was not taken."""

    changed: list[AwarenessEntry] = field(default_factory=list)
    dropped: collections.Counter[str] = field(default_factory=collections.Counter)
    refused: str | None = None  # the whole message was refused (nothing applied): why


class AwarenessStates:
    def __init__(
        self, timeout_s: float = DEFAULT_TIMEOUT_S, limits: AwarenessLimits | None = None
    ) -> None:
        self.timeout_s = timeout_s
        self.limits = limits or AwarenessLimits()
        self._states: dict[int, _State] = {}
        self._owned: dict[Hashable, set[int]] = {}
        self._bytes = 0
        # Clocks of recently removed clients, so a stale echo of a state that was just
        # removed (peers echo what they receive) cannot bring the client back as a ghost.
        # Bounded: the oldest records go first.
        self._removed: dict[int, tuple[int, float]] = {}
        self._payload: bytes | None = None  # every state encoded, until the next change

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._states

    @property
    def size(self) -> int:
        """Bytes of every state's JSON together."""
        return self._bytes

    def owned(self, owner: Hashable) -> frozenset[int]:
        return frozenset(self._owned.get(owner, ()))

    def apply(
        self,
        entries: Sequence[AwarenessEntry],
        now: float,
        owner: Hashable = None,
    ) -> Applied:
        """Apply an inbound message from `owner`; returns what changed and what was dropped.

        Same rule as Yjs' applyAwarenessUpdate: a newer clock wins, and an equal clock may only
        remove a known state. Removals of clients we never saw change nothing. On top of it,
        the ownership and limits of the module docstring.
        """
        result = Applied()
        if len(entries) > self.limits.max_states:
            result.refused = (
                f"{len(entries)} awareness entries in one message, "
                f"over the note's limit of {self.limits.max_states} states"
            )
            return result
        # Last word per client id: a message that changes one id many times is broadcast
        # with its final state only, so what goes out is bounded like what is kept.
        changed: dict[int, AwarenessEntry] = {}
        for entry in entries:
            client_id = entry.client_id
            removed = self._removed.get(client_id)
            if removed is not None and entry.clock < removed[0]:
                continue
            current = self._states.get(client_id)
            known_clock = current.clock if current else -1
            newer = entry.clock > known_clock
            removes_known = entry.clock == known_clock and entry.state is None and current
            if not (newer or removes_known):
                continue
            if current is not None and current.owner != owner:
                # A foreign removal is what a stock client echoes when its own timer dropped
                # a peer: harmless, and no reason to complain.
                if entry.state is not None:
                    result.dropped[FOREIGN] += 1
                continue
            if entry.state is None:
                if current is None:
                    continue
                self._forget(client_id, entry.clock, now)
                changed[client_id] = entry
                continue
            reason = self._set(client_id, entry, owner, now)
            if reason is None:
                changed[client_id] = entry
            else:
                result.dropped[reason] += 1
        result.changed = list(changed.values())
        return result

    def _set(
        self, client_id: int, entry: AwarenessEntry, owner: Hashable, now: float
    ) -> str | None:
        """Keep this state for this owner, or say why not."""
        owned = self._owned.get(owner, ())
        if client_id not in owned and len(owned) >= self.limits.max_ids_per_owner:
            return TOO_MANY_IDS
        text = json.dumps(entry.state, separators=(",", ":")).encode()
        if len(text) > self.limits.max_state_bytes:
            return TOO_BIG
        current = self._states.get(client_id)
        grows = current is None and len(self._states) >= self.limits.max_states
        size_after = self._bytes + len(text) - (current.size if current else 0)
        if grows or size_after > self.limits.max_bytes:
            return ROOM_FULL
        if current is not None:
            self._discard(client_id, current)
        self._removed.pop(client_id, None)
        encoded = write_var_uint(client_id) + write_var_uint(entry.clock) + write_var_bytes(text)
        self._states[client_id] = _State(entry.clock, entry.state, encoded, len(text), owner, now)
        self._owned.setdefault(owner, set()).add(client_id)
        self._bytes += len(text)
        self._payload = None
        return None

    def _discard(self, client_id: int, current: _State) -> None:
        del self._states[client_id]
        self._bytes -= current.size
        owned = self._owned[current.owner]
        owned.discard(client_id)
        if not owned:
            del self._owned[current.owner]
        self._payload = None

    def _forget(self, client_id: int, clock: int, now: float) -> None:
        """Remove a state, remembering the clock of its removal."""
        self._discard(client_id, self._states[client_id])
        self._removed.pop(client_id, None)  # re-inserted last: the newest record
        self._removed[client_id] = (clock, now)
        while len(self._removed) > 2 * self.limits.max_states:
            del self._removed[next(iter(self._removed))]

    def entries(self) -> list[AwarenessEntry]:
        """Every present client's latest state."""
        return [AwarenessEntry(cid, s.clock, s.state) for cid, s in self._states.items()]

    def payload(self) -> bytes | None:
        """Every present client's latest state as one awareness payload, for a newcomer or a
        query (None when nobody is present). Built once per change, not once per reader; at
        most AwarenessLimits.max_payload_bytes()."""
        if not self._states:
            return None
        if self._payload is None:
            parts = [write_var_uint(len(self._states))]
            parts.extend(state.encoded for state in self._states.values())
            self._payload = b"".join(parts)
        return self._payload

    def remove(self, client_ids: Iterable[int], now: float) -> list[AwarenessEntry]:
        """Forget these clients; returns the removal entries to broadcast (clock + 1, null).

        A removed client's own next renewal (clock + 1 by its count) is accepted again; only
        states older than that are refused."""
        removed = []
        for client_id in list(client_ids):
            current = self._states.get(client_id)
            if current is not None:
                # An equal clock with a null state removes too, when the next one is past
                # what a varUint carries.
                clock = min(current.clock + 1, MAX_VAR_UINT)
                self._forget(client_id, clock, now)
                removed.append(AwarenessEntry(client_id, clock, None))
        return removed

    def remove_owner(self, owner: Hashable, now: float) -> list[AwarenessEntry]:
        """Forget every state this owner holds (it left); returns the removal entries."""
        return self.remove(self._owned.get(owner, ()), now)

    def remove_owners(self, match: Callable[[Hashable], bool], now: float) -> list[AwarenessEntry]:
        """Forget every state of the owners that match (a whole instance of a cluster died)."""
        owners = [owner for owner in self._owned if match(owner)]
        return [entry for owner in owners for entry in self.remove_owner(owner, now)]

    def owned_payload(self, owner: Hashable) -> bytes | None:
        """The states this owner holds as one awareness payload (None when it holds none)."""
        owned = self._owned.get(owner)
        if not owned:
            return None
        states = [self._states[client_id].encoded for client_id in owned]
        return write_var_uint(len(states)) + b"".join(states)

    def expire(self, now: float) -> list[AwarenessEntry]:
        """Remove states not renewed within the timeout; returns the removal entries."""
        stale = [cid for cid, s in self._states.items() if now - s.renewed_at >= self.timeout_s]
        forgotten = [cid for cid, (_, at) in self._removed.items() if now - at >= self.timeout_s]
        for client_id in forgotten:
            del self._removed[client_id]
        return self.remove(stale, now)


def user_names(
    entries: Iterable[AwarenessEntry], limit: int = 10, max_chars: int = 40
) -> list[str]:
    """The `user.name` of each state that has one (what the web editor and y-codemirror
    publish), first seen first, without repeats; at most `limit`, each cut to `max_chars`.
    Any other shape of state is skipped: states are whatever clients sent."""
    names: list[str] = []
    for entry in entries:
        user = entry.state.get("user") if isinstance(entry.state, dict) else None
        name = user.get("name") if isinstance(user, dict) else None
        if not isinstance(name, str):
            continue
        name = " ".join(name.split())[:max_chars]
        if name and name not in names:
            names.append(name)
            if len(names) == limit:
                break
    return names
