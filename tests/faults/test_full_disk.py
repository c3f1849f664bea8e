"""SQLite on a disk that fills up under clients typing into a real coscribe server, then is
freed. During the fault the server stays up, says so on /health, refuses REST writes with 503
in bounded time and keeps live rooms going; afterwards every typed word is stored exactly
once."""

from __future__ import annotations

import pytest

from tests.faults.probes import SERVER_ENV
from tests.faults.scenario import Scenario

pytestmark = pytest.mark.slow


async def test_disk_full_then_freed_while_clients_type(small_disk, tmp_path):
    # Only the database is on the small disk; the server's log is not.
    env = {"COSCRIBE_SQLITE_PATH": str(small_disk.mountpoint / "notes.sqlite"), **SERVER_ENV}
    async with Scenario(env, tmp_path) as run:
        # Reads still work on a full disk: a note that is not loaded can be opened.
        await run.outage(
            "disk full", small_disk.fill, "disk freed", small_disk.free, cold_open=False
        )
        await run.finish()
    run.assert_no_problems()
