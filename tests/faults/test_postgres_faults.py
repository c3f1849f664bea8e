"""A private PostgreSQL stopped, restarted and made read-only under clients typing into a real
coscribe server. During the fault the server stays up, says so on /health, refuses REST writes
with 503 in bounded time and keeps live rooms going; afterwards every typed word is stored
exactly once."""

from __future__ import annotations

import pytest

from tests.faults.postgres import PrivatePostgres
from tests.faults.probes import SERVER_ENV, check_health, check_log
from tests.faults.scenario import NOTES, Scenario

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def server_env(postgres: PrivatePostgres) -> dict[str, str]:
    return {"DATABASE_URL": postgres.url, **SERVER_ENV}


async def test_postgres_stopped_then_started_while_clients_type(private_postgres, tmp_path):
    async with Scenario(server_env(private_postgres), tmp_path) as run:
        await run.type_words(10)
        await check_health(run.findings, run.http, failing=False, when="before the outage")
        private_postgres.stop("immediate")
        await run.probe_storage_down("PostgreSQL stopped", cold_open=True)
        private_postgres.start()
        await run.probe_recovered("PostgreSQL started again")
        await run.finish()
    check_log(run.findings, run.log, list(NOTES))
    run.assert_no_problems()


async def test_postgres_restarted_while_clients_type(private_postgres, tmp_path):
    async with Scenario(server_env(private_postgres), tmp_path) as run:
        await run.type_words(10)
        private_postgres.restart("fast")
        await run.probe_recovered("after a restart")
        private_postgres.restart("immediate")
        await run.probe_recovered("after a crash and restart")
        await run.finish()
    check_log(run.findings, run.log, list(NOTES), outages=2, optional=True)
    run.assert_no_problems()


async def test_postgres_read_only_while_clients_type(private_postgres, tmp_path):
    # Broken without stopping: connections and reads work, every write fails.
    async with Scenario(server_env(private_postgres), tmp_path) as run:
        await run.type_words(10)
        private_postgres.set_read_only(True)
        await run.probe_storage_down("PostgreSQL read-only", cold_open=False)
        private_postgres.set_read_only(False)
        await run.probe_recovered("PostgreSQL writable again")
        await run.finish()
    check_log(run.findings, run.log, list(NOTES))
    run.assert_no_problems()
