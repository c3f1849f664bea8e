"""What pycrdt's document observer costs when writers are concurrent (bench scenario e).

    .venv/bin/python -m bench.observer [--writers 4] [--updates 5000] [--lag 2500]

`writers` docs append markers at the end of one text, as the load generator's burst writers
do, and see each other's edits only every `lag` rounds (a server that lags behind a burst
makes its writers' views that stale). The updates are then applied, in the order sent, to a
fresh doc: without an observer, with an observer that does nothing, and with one that reads
the event's update (what coscribe's Room does). Prints process CPU seconds for each.

pycrdt builds its TransactionEvent (states, delete set, update) eagerly for every transaction
with an observer; under concurrency that costs several times the integration itself.
"""

from __future__ import annotations

import argparse
import time

import pycrdt


def updates(writers: int, rounds: int, lag: int) -> list[bytes]:
    docs = [pycrdt.Doc(client_id=10 + i) for i in range(writers)]
    texts = [doc.get("content", type=pycrdt.Text) for doc in docs]
    out: list[bytes] = []
    for k in range(rounds):
        for i, (doc, text) in enumerate(zip(docs, texts, strict=True)):
            before = doc.get_state()
            text.insert(len(text), f"#@{i}.{k}.{time.time_ns() // 1000}@#")
            out.append(doc.get_update(before))
        if k % lag == 0:
            everything = [doc.get_update() for doc in docs]
            for doc in docs:
                for update in everything:
                    doc.apply_update(update)
    return out


def apply_all(batch: list[bytes], observer: str) -> float:
    doc = pycrdt.Doc()
    doc.get("content", type=pycrdt.Text)
    seen: list[bytes] = []
    if observer == "nothing":
        doc.observe(lambda event: None)
    elif observer == "update":
        doc.observe(lambda event: seen.append(event.update))
    start = time.process_time()
    for update in batch:
        doc.apply_update(update)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--updates", type=int, default=5000, help="per writer")
    parser.add_argument("--lag", type=int, nargs="*", default=[50, 500, 2500])
    args = parser.parse_args()
    print(f"pycrdt {pycrdt.__version__}: {args.writers} writers x {args.updates} updates")
    print(
        "| writers see each other every | no observer (s) | observer, no-op (s) "
        "| observer reads update (s) |"
    )
    print("|---:|---:|---:|---:|")
    for lag in args.lag:
        batch = updates(args.writers, args.updates, lag)
        figures = [apply_all(batch, observer) for observer in ("none", "nothing", "update")]
        print(f"| {lag} rounds | " + " | ".join(f"{f:.2f}" for f in figures) + " |")


if __name__ == "__main__":
    main()
