"""SQLite on a disk that fills up under clients typing into a real coscribe server, then is
freed. During the fault the server stays up, says so on /health, refuses REST writes with 503
in bounded time and keeps live rooms going; afterwards every typed word is stored exactly
once."""

from __future__ import annotations

import pytest

from tests.faults.probes import SERVER_ENV, check_health, check_log
from tests.faults.scenario import NOTES, Scenario

pytestmark = pytest.mark.slow


async def test_disk_full_then_freed_while_clients_type(small_disk, tmp_path):
    # Only the database is on the small disk; the server's log is not.
    env = {"COSCRIBE_SQLITE_PATH": str(small_disk.mountpoint / "notes.sqlite"), **SERVER_ENV}
    async with Scenario(env, tmp_path) as run:
        await run.type_words(10)
        await check_health(run.findings, run.http, failing=False, when="before the disk fills")
        assert small_disk.fill() > 0
        # Reads still work on a full disk: a note that is not loaded can be opened.
        await run.probe_storage_down("disk full", cold_open=False)
        small_disk.free()
        await run.probe_recovered("disk freed")
        await run.finish()
    check_log(run.findings, run.log, list(NOTES))
    run.assert_no_problems()
