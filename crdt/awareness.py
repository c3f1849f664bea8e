"""Awareness bookkeeping for one room: who is present, with which state, since when.

The server holds no awareness state of its own (it is not a peer). It keeps the latest state of
every client so a newcomer sees who is there, removes the client ids a connection owned when it
closes, and times out states that were not renewed (clients renew every 15 s; Yjs drops states
after 30 s). Pure bookkeeping: callers pass the time in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .protocol import AwarenessEntry

DEFAULT_TIMEOUT_S = 30.0


@dataclass(slots=True)
class _State:
    clock: int
    state: object
    renewed_at: float


class AwarenessStates:
    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._states: dict[int, _State] = {}
        # Clocks of recently removed clients, so a stale echo of a state that was just
        # removed (peers echo what they receive) cannot bring the client back as a ghost.
        self._removed: dict[int, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._states

    def apply(self, entries: Iterable[AwarenessEntry], now: float) -> list[AwarenessEntry]:
        """Apply an inbound update; returns the entries that changed something.

        Same rule as Yjs' applyAwarenessUpdate: a newer clock wins, and an equal clock may only
        remove a known state. Removals of clients we never saw change nothing.
        """
        changed = []
        for entry in entries:
            removed = self._removed.get(entry.client_id)
            if removed is not None and entry.clock < removed[0]:
                continue
            current = self._states.get(entry.client_id)
            known_clock = current.clock if current else -1
            newer = entry.clock > known_clock
            removes_known = entry.clock == known_clock and entry.state is None and current
            if not (newer or removes_known):
                continue
            if entry.state is None:
                if current is None:
                    continue
                del self._states[entry.client_id]
                self._removed[entry.client_id] = (entry.clock, now)
            else:
                self._removed.pop(entry.client_id, None)
                self._states[entry.client_id] = _State(entry.clock, entry.state, now)
            changed.append(entry)
        return changed

    def entries(self) -> list[AwarenessEntry]:
        """Every present client's latest state, for a newcomer."""
        return [AwarenessEntry(cid, s.clock, s.state) for cid, s in self._states.items()]

    def remove(self, client_ids: Iterable[int], now: float | None = None) -> list[AwarenessEntry]:
        """Forget these clients; returns the removal entries to broadcast (clock + 1, null).

        A removed client's own next renewal (clock + 1 by its count) is accepted again; only
        states older than that are refused."""
        removed = []
        for client_id in client_ids:
            current = self._states.pop(client_id, None)
            if current is not None:
                removed.append(AwarenessEntry(client_id, current.clock + 1, None))
                self._removed[client_id] = (current.clock + 1, now or current.renewed_at)
        return removed

    def expire(self, now: float) -> list[AwarenessEntry]:
        """Remove states not renewed within the timeout; returns the removal entries."""
        stale = [cid for cid, s in self._states.items() if now - s.renewed_at >= self.timeout_s]
        forgotten = [cid for cid, (_, at) in self._removed.items() if now - at >= self.timeout_s]
        for client_id in forgotten:
            del self._removed[client_id]
        return self.remove(stale, now)
