"""A PostgreSQL outage under editors typing: what it costs in write attempts and log.

A private PostgreSQL (tests/faults/postgres.py), one coscribe server on it with its default
settings, NOTES notes with two typing clients each (a word every 0.1 s). PostgreSQL is stopped
(immediate) for --outage seconds and started again; the clients type throughout. Prints the
failed write attempts (/health's failed_writes), the server log's lines, bytes and tracebacks,
and how many typed words are missing from storage after a SIGKILL and restart.

    .venv/bin/python bench/outage.py [--outage 30] [--notes 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.postgres import PrivatePostgres, missing_tools
from tests.faults.typists import Typing, count_stored
from tests.live_server import LiveServer, run_cli


async def run(outage_s: float, note_count: int) -> None:
    problem = missing_tools()
    if problem:
        raise SystemExit(f"cannot start a private PostgreSQL: {problem}")
    postgres = PrivatePostgres().create()
    cwd = Path(tempfile.mkdtemp(prefix="coscribe-outage-"))
    env = {"DATABASE_URL": postgres.url}
    try:
        migrated = run_cli(["db", "migrate"], env, cwd)
        assert migrated.returncode == 0, migrated.stderr
        server = LiveServer(env, cwd).start()
        notes = [f"outage-{n}" for n in range(note_count)]
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            for note_id in notes:
                (await http.post("/api/notes", json={"id": note_id})).raise_for_status()
            typing = Typing(server.url, notes, per_note=2, interval_s=0.1)
            await typing.start()
            await asyncio.sleep(3)
            postgres.stop("immediate")
            started = time.monotonic()
            await asyncio.sleep(outage_s)
            postgres.start()
            down = time.monotonic() - started
            await asyncio.sleep(3)
            await typing.stop()
            deadline = time.monotonic() + 60
            while (health := (await http.get("/health")).json())["unsaved_updates"]:
                if time.monotonic() > deadline:
                    raise SystemExit(f"updates still unsaved a minute after the outage: {health}")
                await asyncio.sleep(0.2)
            typed = typing.typed()
            await typing.close()
        log = server.log()
        server.kill()  # what is not stored by now is lost: the count below says
        again = LiveServer(env, cwd, port=server.port).start()
        stored = {
            note_id: httpx.get(
                f"{again.url}/api/notes/{note_id}/content", headers={"accept": "text/plain"}
            ).text
            for note_id in notes
        }
        again.stop()
        problems = count_stored(typed, stored)
        words = sum(len(w) for w in typed.values())
        print(f"outage: {down:.1f} s, {note_count} notes x 2 clients typing 10 words/s each")
        print(f"failed write attempts: {health['failed_writes']}")
        print(f"server log: {len(log.splitlines())} lines, {len(log.encode())} bytes")
        print(f"tracebacks in the log: {log.count('Traceback')}")
        print(f"words typed: {words}; problems in storage: {len(problems)} {problems[:3]}")
    finally:
        postgres.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=30, help="seconds PostgreSQL is down")
    parser.add_argument("--notes", type=int, default=3, help="notes, two typists each")
    args = parser.parse_args()
    asyncio.run(run(args.outage, args.notes))


if __name__ == "__main__":
    main()
