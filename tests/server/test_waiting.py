"""Flag and Inbox: the per-socket stand-ins for asyncio.Event and asyncio.Queue."""

from __future__ import annotations

import asyncio

import pytest

from server.waiting import Flag, Inbox


async def test_a_flag_wakes_every_waiter_and_a_waiter_that_gives_up_harms_none() -> None:
    flag = Flag()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    impatient = asyncio.create_task(asyncio.wait_for(flag.wait(), 0.01))
    with pytest.raises(TimeoutError):
        await impatient
    assert not any(task.done() for task in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert flag.is_set() and await flag.wait()
    flag.clear()
    assert not flag.is_set()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(flag.wait(), 0.01)


async def test_an_inbox_keeps_order_and_survives_a_cancelled_reader() -> None:
    inbox: Inbox[int] = Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    for item in range(5):
        inbox.put_nowait(item)
    assert inbox.qsize() == 5 and not inbox.empty()
    assert [await inbox.get() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert inbox.empty()
    later = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(9)
    assert await asyncio.wait_for(later, 1) == 9
