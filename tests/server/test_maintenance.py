"""Compaction and background jobs on a running server: nothing written meanwhile is lost."""

import asyncio

import httpx
import pytest
import sqlalchemy as sa

from persistence.config import database_config_from_env
from persistence.engine import Database
from persistence.schema import background_tasks, note_updates
from tests.live_server import COSCRIBE, LiveServer, clean_env, run_cli
from tests.yclient import YClient, eventually


def server_env(request, tmp_path, driver: str) -> dict[str, str]:
    if driver == "sqlite":
        return {"COSCRIBE_SQLITE_PATH": str(tmp_path / "m.sqlite")}
    env = {"DATABASE_URL": request.getfixturevalue("postgres_schemas").new()}
    assert run_cli(["db", "migrate"], env, tmp_path).returncode == 0
    return env


def log_rows(env: dict[str, str], note_id: str) -> int:
    with Database(database_config_from_env(env)) as db, db.read() as conn:
        query = sa.select(sa.func.count()).where(note_updates.c.note_id == note_id)
        return conn.execute(query).scalar_one()


@pytest.mark.parametrize("driver", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_compact_while_clients_write_keeps_every_edit(request, tmp_path, driver):
    env = server_env(request, tmp_path, driver)
    with LiveServer(env, tmp_path) as server:
        writers = [await YClient(server.url, "busy").connect() for _ in range(2)]
        await asyncio.wait_for(asyncio.gather(*(w.synced.wait() for w in writers)), 10)
        words: list[str] = []
        stop = asyncio.Event()

        async def write(index: int, client: YClient) -> None:
            n = 0
            while not stop.is_set():
                word = f"<{index}.{n}>"
                client.text.insert(0, word)
                words.append(word)
                n += 1
                await asyncio.sleep(0.005)

        tasks = [asyncio.ensure_future(write(i, w)) for i, w in enumerate(writers)]
        compactions = []
        for _ in range(3):
            await asyncio.sleep(0.4)
            process = await asyncio.create_subprocess_exec(
                *COSCRIBE,
                "compact",
                "--all",
                env=clean_env(env, tmp_path),
                cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await process.communicate()
            assert process.returncode == 0, err.decode()
            compactions.append(out.decode())
        stop.set()
        await asyncio.gather(*tasks)
        await eventually(lambda: all(w in str(writers[0].text) for w in words), timeout=10)
        for writer in writers:
            await writer.close()
        await eventually(lambda: httpx.get(f"{server.url}/health").json()["rooms"] == 0)
    assert any("compacted 1 notes" in out for out in compactions), compactions
    assert len(words) > 100
    with LiveServer(env, tmp_path) as server:
        reader = await YClient(server.url, "busy").connect()
        await asyncio.wait_for(reader.synced.wait(), 10)
        missing = [w for w in words if w not in str(reader.text)]
        assert not missing, f"{len(missing)} edits lost, e.g. {missing[:5]}"
        await reader.close()


async def test_a_long_log_is_compacted_by_a_background_job(tmp_path):
    env = {
        "COSCRIBE_SQLITE_PATH": str(tmp_path / "auto.sqlite"),
        "COSCRIBE_COMPACT_AFTER_UPDATES": "20",
        "COSCRIBE_FLUSH_WINDOW_MS": "1",
    }
    with LiveServer(env, tmp_path) as server:
        client = await YClient(server.url, "auto").connect()
        await asyncio.wait_for(client.synced.wait(), 10)
        for n in range(60):
            client.text.insert(0, f"{n};")
            await asyncio.sleep(0.01)
        await eventually(
            lambda: httpx.get(f"{server.url}/health").json()["jobs_completed"] >= 1,
            timeout=15,
            what="a compaction job",
        )
        await eventually(lambda: log_rows(env, "auto") < 60, timeout=10, what="a shorter log")
        await client.close()
    with Database(database_config_from_env(env)) as db, db.read() as conn:
        kinds = conn.execute(sa.select(background_tasks.c.kind, background_tasks.c.status)).all()
    assert ("compact_note", "succeeded") in kinds


def test_cli_schedules_and_stats(tmp_path):
    env = {"COSCRIBE_SQLITE_PATH": str(tmp_path / "s.sqlite")}
    listed = run_cli(["schedules", "list"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "builtin-compaction" in listed.stdout and "builtin-retention" in listed.stdout
    stats = run_cli(["stats", "--url", "http://127.0.0.1:9"], env, tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert "notes: 0 (0 deleted)" in stats.stdout
    assert "not reachable" in stats.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["compact"], "pass --all"),
        (["compact", "x", "--all"], "not both"),
        (["compact", "no-such-note"], "not found"),
        (["compact", "bad id!"], "invalid note id"),
        (["compact", "--all", "--min-updates", "0"], "Invalid value"),
    ],
)
def test_compact_user_errors_are_one_line(tmp_path, args, words):
    result = run_cli(args, {"COSCRIBE_SQLITE_PATH": str(tmp_path / "e.sqlite")}, tmp_path)
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_maintenance_commands_refuse_an_unmigrated_postgres(tmp_path, postgres_schemas):
    env = {"DATABASE_URL": postgres_schemas.new()}
    for args in (["compact", "--all"], ["stats"], ["schedules", "list"]):
        result = run_cli(args, env, tmp_path)
        assert result.returncode == 2
        assert "coscribe db migrate" in result.stderr, (args, result.stderr)
