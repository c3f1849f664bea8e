"""The benchmark: bench/run.py compares coscribe with other y-websocket servers under load
(bench/README.md). Its modules: scenarios (what is measured), servers (starting each server
under test), cell (one scenario on one server), procfs (CPU and memory from /proc), report
(the markdown table and notes).

The helpers that start, probe and stop a server on a free port are shared with the tests
(tests/processes.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NODE_DIR = BENCH / "node"
RESULTS = BENCH / "results"


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries the report."""
    print(message, file=sys.stderr, flush=True)
