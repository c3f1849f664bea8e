"""Open connections per client address, for the per-address limits."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator


class Addresses:
    """Open websockets per client address (the per-address limit)."""

    def __init__(self) -> None:
        self.open: collections.Counter[str] = collections.Counter()

    @contextlib.contextmanager
    def hold(self, address: str) -> Iterator[int]:
        self.open[address] += 1
        try:
            yield self.open[address]
        finally:
            self.open[address] -= 1
            if not self.open[address]:
                del self.open[address]
