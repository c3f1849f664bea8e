"""Real clients typing tracked words into notes, and the final count of what was stored.

Each typist is a y-websocket client (tests/yclient.py) appending numbered words such as
`<fault-0/b/17>` to a note's body at a steady pace. A word is one insert, so it is never split
by another client's; the delimiters make sure no word is part of another. A typist whose
socket is lost keeps typing offline and reconnects (its offline words then sync), and counts
the loss: clients already in a room must never be dropped by a storage fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterable

import websockets

from tests.yclient import YClient, eventually

WORD = re.compile(r"<[^<>\s]+>")


class Typist:
    def __init__(self, base_url: str, note_id: str, name: str) -> None:
        self.note_id = note_id
        self.name = name
        self.client = YClient(base_url, note_id)
        self.words: list[str] = []
        self.drops: list[int | None] = []  # the close code of every lost connection

    def __repr__(self) -> str:
        return f"typist {self.name} on {self.note_id}"

    @property
    def text(self) -> str:
        return str(self.client.text)

    async def join(self, timeout: float = 10) -> None:
        await self.client.connect(open_timeout=timeout)
        await asyncio.wait_for(self.client.synced.wait(), timeout)

    def type_word(self) -> str:
        word = f"<{self.note_id}/{self.name}/{len(self.words)}>"
        body = self.client.text
        body.insert(len(body), word + " ")  # the words are ASCII: bytes and characters agree
        self.words.append(word)
        return word

    async def keep_typing(self, stop: asyncio.Event, interval_s: float) -> None:
        lost = False
        while not stop.is_set():
            if not self.client.connected:
                if not lost:
                    self.drops.append(self.client.close_code)
                    lost = True
                with contextlib.suppress(OSError, TimeoutError, websockets.WebSocketException):
                    await self.client.connect(open_timeout=2)
                    lost = False
            self.type_word()
            # The pace of typing, cut short when told to stop.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)

    async def close(self) -> None:
        with contextlib.suppress(OSError, websockets.WebSocketException):
            await self.client.close()


class Typing:
    """`per_note` typists on each note, all typing at once until `stop()`."""

    def __init__(
        self, base_url: str, note_ids: Iterable[str], per_note: int = 2, interval_s: float = 0.1
    ) -> None:
        self.note_ids = list(note_ids)
        self.interval_s = interval_s
        self.typists = [
            Typist(base_url, note_id, chr(ord("a") + n))
            for note_id in self.note_ids
            for n in range(per_note)
        ]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> Typing:
        for typist in self.typists:
            await typist.join()
        self._tasks = [
            asyncio.create_task(t.keep_typing(self._stop, self.interval_s), name=repr(t))
            for t in self.typists
        ]
        return self

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def close(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for typist in self.typists:
            await typist.close()

    def typed(self) -> dict[str, list[str]]:
        """Every word typed so far, by note."""
        words: dict[str, list[str]] = {note_id: [] for note_id in self.note_ids}
        for typist in self.typists:
            words[typist.note_id] += typist.words
        return words

    def drops(self) -> list[str]:
        return [f"{t} lost its socket {len(t.drops)}x {t.drops}" for t in self.typists if t.drops]

    def lacking(self, words: dict[str, list[str]]) -> list[str]:
        """Which typists do not have every one of `words` (by note) yet."""
        out = []
        for typist in self.typists:
            text = typist.text
            missing = [w for w in words[typist.note_id] if w not in text]
            if missing:
                out.append(f"{typist} lacks {len(missing)} words, e.g. {missing[:3]}")
        return out

    async def wait_everyone_has(self, words: dict[str, list[str]], timeout: float) -> list[str]:
        """Wait until every typist has `words`; returns what is still lacking at the timeout."""
        with contextlib.suppress(AssertionError):
            await eventually(lambda: not self.lacking(words), timeout=timeout)
        return self.lacking(words)


def count_stored(typed: dict[str, list[str]], stored: dict[str, str]) -> list[str]:
    """Every typed word must be in its note's stored text exactly once, and nothing else."""
    problems = []
    for note_id, words in typed.items():
        found = WORD.findall(stored.get(note_id, ""))
        counts: dict[str, int] = {}
        for word in found:
            counts[word] = counts.get(word, 0) + 1
        lost = [w for w in words if counts.get(w, 0) == 0]
        doubled = [w for w in words if counts.get(w, 0) > 1]
        unknown = sorted(set(counts) - set(words))
        if lost:
            problems.append(f"{note_id}: {len(lost)} of {len(words)} typed words lost: {lost[:5]}")
        if doubled:
            problems.append(f"{note_id}: {len(doubled)} words stored twice or more: {doubled[:5]}")
        if unknown:
            problems.append(f"{note_id}: {len(unknown)} words nobody typed: {unknown[:5]}")
    return problems
