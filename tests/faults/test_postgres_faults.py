"""A private PostgreSQL stopped, restarted and made read-only under clients typing into a real
coscribe server. During the fault the server stays up, says so on /health, refuses REST writes
with 503 in bounded time and keeps live rooms going; afterwards every typed word is stored
exactly once."""

from __future__ import annotations

import pytest

from tests.faults.postgres import PrivatePostgres
from tests.faults.probes import SERVER_ENV
from tests.faults.scenario import Scenario

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def server_env(postgres: PrivatePostgres) -> dict[str, str]:
    return {"DATABASE_URL": postgres.url, **SERVER_ENV}


async def test_postgres_stopped_then_started_while_clients_type(private_postgres, tmp_path):
    async with Scenario(server_env(private_postgres), tmp_path) as run:
        await run.outage(
            "PostgreSQL stopped",
            lambda: private_postgres.stop("immediate"),
            "PostgreSQL started again",
            private_postgres.start,
            cold_open=True,
        )
        await run.finish()
    run.assert_no_problems()
    # The change feed's own LISTEN connection: one line as it breaks, one as it listens again.
    for line in ("events failed", "events works again"):
        found = [x for x in run.log.splitlines() if f"listening for other instances' {line}" in x]
        assert len(found) == 1, (line, found)


async def test_postgres_restarted_while_clients_type(private_postgres, tmp_path):
    async with Scenario(server_env(private_postgres), tmp_path) as run:
        await run.type_words(10)
        private_postgres.restart("fast")
        await run.probe_recovered("after a restart")
        private_postgres.restart("immediate")
        await run.probe_recovered("after a crash and restart")
        # A restart may pass without a failed write, or cost one outage each.
        await run.finish(outages=2, optional=True)
    run.assert_no_problems()


async def test_postgres_read_only_while_clients_type(private_postgres, tmp_path):
    # Broken without stopping: connections and reads work, every write fails. A note that is
    # not loaded can still be read, so opening one is no part of this fault.
    async with Scenario(server_env(private_postgres), tmp_path) as run:
        await run.outage(
            "PostgreSQL read-only",
            lambda: private_postgres.set_read_only(True),
            "PostgreSQL writable again",
            lambda: private_postgres.set_read_only(False),
            cold_open=False,
        )
        await run.finish()
    run.assert_no_problems()
