"""The shared test data (editing traces, Yjs updates), found beside the repository.

CI and developers have `shared/` next to the checkout; COSCRIBE_SHARED_DATA points elsewhere.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("COSCRIBE_SHARED_DATA", ROOT.parent / "shared" / "data"))
TRACES = SHARED_DATA / "editing-traces" / "sequential_traces"


def data_file(relative: str) -> Path:
    """A file of the shared data; a missing one fails the test (the data is part of the setup)."""
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.fail(f"test data {path} is missing (set COSCRIBE_SHARED_DATA to its folder)")
    return path


def load_trace(name: str = "automerge-paper", *, ascii_only: bool = False) -> dict:
    """A sequential editing trace: {startContent, endContent, txns: [{patches: [...]}, ...]}."""
    folder = "editing-traces/sequential_traces" + ("/ascii_only" if ascii_only else "")
    with gzip.open(data_file(f"{folder}/{name}.json.gz"), "rt", encoding="utf-8") as f:
        return json.load(f)
