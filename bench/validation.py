"""What validating updates before pycrdt costs (crdt/validation.py).

    .venv/bin/python bench/validation.py

Replays the automerge-paper editing trace (tests/fixtures/editing-traces, 259,778 user
transactions) into a pycrdt doc, one update per transaction, then prints:

- per update: the time to check each update against the note's DepthTracker (strict, as a
  live room does) next to the time pycrdt takes to apply it;
- per load: the time to scan the final state (one v1 update) into a fresh tracker next to
  the time pycrdt takes to load it, and the tracker's size;
- the same for a rich-text shaped document (paragraphs of XmlText in an XmlFragment, with
  the trace's text typed into them), where every item lives inside a nested type.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pycrdt  # noqa: E402

from crdt import document  # noqa: E402
from crdt.validation import DepthTracker  # noqa: E402
from tests.data import load_trace  # noqa: E402


def trace_updates(rich: bool) -> list[bytes]:
    trace = load_trace("automerge-paper")
    doc = document.new_doc()
    captured: list[bytes] = []
    doc.observe(lambda event: captured.append(event.update))
    if rich:
        fragment = doc.get("prosemirror", type=pycrdt.XmlFragment)
        with doc.transaction():
            quote = fragment.children.append(pycrdt.XmlElement("blockquote"))
            item = quote.children.append(pycrdt.XmlElement("list_item"))
            para = item.children.append(pycrdt.XmlElement("paragraph"))
            text = para.children.append(pycrdt.XmlText())
    else:
        text = doc.get("content", type=pycrdt.Text)
    for transaction in trace["txns"]:
        with doc.transaction():
            for position, deleted, inserted in transaction["patches"]:
                if deleted:
                    del text[position : position + deleted]
                if inserted:
                    text.insert(position, inserted)
    return captured


def measure(name: str, updates: list[bytes]) -> None:
    tracker = DepthTracker()
    start = time.perf_counter()
    for update in updates:
        tracker.commit(tracker.check(update))
    checked = time.perf_counter() - start

    doc = pycrdt.Doc()
    start = time.perf_counter()
    for update in updates:
        doc.apply_update(update)
    applied = time.perf_counter() - start

    state = doc.get_update()
    start = time.perf_counter()
    scanned = DepthTracker()
    scanned.scan(state)
    scan_s = time.perf_counter() - start
    start = time.perf_counter()
    pycrdt.Doc().apply_update(state)
    load_s = time.perf_counter() - start
    ranges = sum(len(deep.starts) for deep in scanned.deep.values())

    n = len(updates)
    print(f"## {name}: {n:,} updates, final state {len(state):,} bytes")
    print()
    print("| what | total | per update |")
    print("|---|---:|---:|")
    print(f"| check (strict, with tracker) | {checked:.2f} s | {checked / n * 1e6:.1f} µs |")
    print(f"| pycrdt apply_update | {applied:.2f} s | {applied / n * 1e6:.1f} µs |")
    print()
    print("| load of the final state | time |")
    print("|---|---:|")
    print(f"| scan into a new tracker | {scan_s * 1000:.0f} ms |")
    print(f"| pycrdt apply of the state | {load_s * 1000:.0f} ms |")
    print(f"| tracker: clients / deep ranges | {len(scanned.ends)} / {ranges} |")
    print()


def main() -> None:
    measure("plain text (root Y.Text)", trace_updates(rich=False))
    measure("rich text (XmlText three types deep)", trace_updates(rich=True))


if __name__ == "__main__":
    main()
