"""Flag and Inbox: asyncio.Event and asyncio.Queue for objects there is one of per socket.

A server holds thousands of idle sockets, and asyncio's own primitives are sized for the
general case: an Event keeps a deque of waiters (760 bytes even when nobody waits), a Queue
keeps three deques and an Event. A socket's flags and its inbox have at most one waiter
(the socket's own task) and a handful of items, so a future made while someone waits is
all they need: about 100 bytes each instead of 0.8 and 3.8 kB.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Flag:
    """asyncio.Event's set/clear/is_set/wait, for any number of waiters, without a deque."""

    __slots__ = ("_value", "_waiter")

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        self._value = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        # Shielded: one waiter given up (a timeout) must not cancel the future the others
        # wait on.
        await asyncio.shield(self._waiter)
        return True


class Inbox(Generic[T]):
    """The put_nowait/get/empty part of asyncio.Queue (unbounded), for one reader."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._waiter: asyncio.Future[None] | None = None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> T:
        while not self._items:
            # Its one reader awaits the future itself: a reader cancelled mid-wait leaves it
            # cancelled (done), and the next get() makes a new one.
            if self._waiter is None or self._waiter.done():
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        # A list, not a deque: the sender pauses reading after each message until this is
        # empty again (uvicorn's flow control), so it holds one or two items.
        return self._items.pop(0)
