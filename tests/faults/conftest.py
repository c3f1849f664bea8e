"""A private PostgreSQL and a small disk, each ended at teardown whatever the test did."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ci import unavailable
from tests.faults.disk import DiskUnavailable, SmallDisk
from tests.faults.postgres import PrivatePostgres, missing_tools

DISK_MB = 16


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this test's own, on a free port; never the shared one."""
    problem = missing_tools()
    if problem is not None:
        unavailable(
            f"no private PostgreSQL for the fault tests: {problem}",
            "Install the PostgreSQL 15 server (apt-get install postgresql-15) or set "
            "COSCRIBE_TEST_PG_BIN to the folder holding initdb and pg_ctl to enable them.",
        )
    server = PrivatePostgres()
    try:
        yield server.create()
    finally:
        server.destroy()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A tmpfs of DISK_MB megabytes, to fill up."""
    disk = SmallDisk(tmp_path / "disk", DISK_MB)
    try:
        disk.mount()
    except DiskUnavailable as exc:
        unavailable(
            f"no small disk for the full-disk test: {exc}",
            "Run the tests as root (as CI does) to enable it.",
        )
    try:
        yield disk
    finally:
        disk.unmount()
