"""The test data the repository carries (editing traces, Yjs updates) in tests/fixtures/.

Its README there gives each file's origin and licence (the traces CC BY 4.0, the yrs input MIT).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
TRACES = FIXTURES / "editing-traces" / "sequential_traces"


def data_file(relative: str) -> Path:
    """A file of tests/fixtures; a missing one fails the test (the repository carries it)."""
    path = FIXTURES / relative
    if not path.is_file():
        pytest.fail(f"test data {path} is missing from the checkout")
    return path


def load_trace(name: str = "automerge-paper", *, ascii_only: bool = False) -> dict:
    """A sequential editing trace: {startContent, endContent, txns: [{patches: [...]}, ...]}."""
    folder = "editing-traces/sequential_traces" + ("/ascii_only" if ascii_only else "")
    with gzip.open(data_file(f"{folder}/{name}.json.gz"), "rt", encoding="utf-8") as f:
        return json.load(f)
