"""A lock between processes on this machine, e.g. two test runs installing into one folder."""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock on `coscribe-{name}.lock` in the temp folder for the block.

    The lock file lives outside any working tree, so it needs no .gitignore entry."""
    path = Path(tempfile.gettempdir()) / f"coscribe-{name}.lock"
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
