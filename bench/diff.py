"""What a text diff costs (crdt/text.py): the indexer diffs every edited note against the body it
indexed before, and a REST text replace diffs on the event loop. rapidfuzz holds the GIL for a
whole match, so the time of one call is also how long every room of the process may wait.

    .venv/bin/python bench/diff.py

Prints, per shape of change, the time of one diff (the best of several) and what it found.
"""

from __future__ import annotations

import random
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crdt import text


def prose(rng: random.Random, size: int, line_every: int = 0) -> str:
    vocabulary = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 9)))
        for _ in range(2000)
    ]
    words, length = [], 0
    while length < size:
        words.append(rng.choice(vocabulary))
        if line_every and len(words) % line_every == 0:
            words[-1] += "\n"
        length += len(words[-1]) + 1
    return " ".join(words)[:size]


def scatter(rng: random.Random, body: str, count: int) -> str:
    """Insert `count` short markers at random places, as scenario (b)'s writers do."""
    for position in sorted(rng.sample(range(len(body)), count), reverse=True):
        body = body[:position] + f"[{rng.randint(0, 10**6)}]" + body[position:]
    return body


def main() -> None:
    rng = random.Random(7)
    cases = {}
    for size in (3_500, 7_000, 20_000):
        body = prose(rng, size)
        cases[f"one line of {size:,} characters, 4 insertions"] = (body, scatter(rng, body, 4))
    body = prose(rng, 18_000, line_every=10)
    cases["18,000 characters in lines, 4 insertions"] = (body, scatter(rng, body, 4))
    body = prose(rng, 10_000)
    cases["10,000 characters, one at each end"] = (body, "X" + body + "Y")
    cases["10,000 characters rewritten"] = (body, prose(rng, 10_000))
    print("| change | ms per diff | edits | characters inserted |")
    print("| --- | ---: | ---: | ---: |")
    for name, (old, new) in cases.items():
        seconds = min(timeit.repeat(lambda: text.diff(old, new), number=3, repeat=5)) / 3  # noqa: B023
        edits = text.diff(old, new)
        inserted = sum(len(insert) for _, _, insert in edits)
        print(f"| {name} | {seconds * 1e3:.2f} | {len(edits)} | {inserted:,} |")


if __name__ == "__main__":
    main()
