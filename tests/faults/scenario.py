"""One fault scenario: a real coscribe server, clients typing into its notes, and the count.

    async with Scenario(env, tmp_path) as run:
        # Probe the server during the fault and after it.
        await run.outage("down", database.stop, "back", database.start, cold_open=True)
        # Every typed word stored exactly once, the process alive, two log lines per note.
        await run.finish()
    run.assert_no_problems()

The typed notes are each edited by two typists; REST_NOTE is open in a room with one quiet
watcher (REST writes go there, so they never replace typed words); COLD_NOTE exists but is
never opened, to be opened while storage is down.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from tests.faults.probes import (
    NOTICE_S,
    Findings,
    check_cold_open_refused,
    check_health,
    check_live_read,
    check_log,
    check_write_refused,
    health,
    nothing_unsaved,
    says_failing,
    says_ok,
    wait_health,
)
from tests.faults.typists import Typing, count_stored
from tests.live_server import LiveServer, run_cli
from tests.yclient import YClient, eventually

NOTES = ("fault-0", "fault-1", "fault-2")
REST_NOTE = "fault-rest"
COLD_NOTE = "fault-cold"
TYPING_INTERVAL_S = 0.1
# Words each typist types while a fault lasts, besides the probes' own time: at one word per
# 0.1 s, ten seconds at least, several steps of the server's retry backoff.
FAULT_WORDS = 100


class Scenario:
    def __init__(self, env: Mapping[str, str], cwd: Path) -> None:
        self.env = dict(env)
        self.cwd = cwd
        self.findings = Findings()
        self.server = LiveServer(self.env, cwd)
        # A new connection per request: a probe's answer (or a dropped connection after a
        # failed one) must not depend on what the previous probe did to a kept-alive socket.
        self.http = httpx.AsyncClient(
            base_url=self.server.url, limits=httpx.Limits(max_keepalive_connections=0)
        )
        self.typing = Typing(self.server.url, NOTES, per_note=2, interval_s=TYPING_INTERVAL_S)
        self.watcher = YClient(self.server.url, REST_NOTE)
        self.log = ""

    async def __aenter__(self) -> Scenario:
        try:
            if "DATABASE_URL" in self.env:
                migrated = run_cli(["db", "migrate"], self.env, self.cwd)
                assert migrated.returncode == 0, migrated.stderr
            self.server.start()
            for note_id in (*NOTES, REST_NOTE, COLD_NOTE):
                created = await self.http.post("/api/notes", json={"id": note_id})
                assert created.status_code == 201, created.text
            await self.watcher.connect()
            await eventually(self.watcher.synced.is_set, what="the watcher's sync")
            await self.typing.start()
        except BaseException:
            await self.__aexit__()  # no server or client outlives a failed start
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.typing.close()
        await self.watcher.close()
        await self.http.aclose()
        self.server.stop()

    async def type_words(self, count: int, timeout: float = 60) -> None:
        """Let every typist type `count` more words (the length of a phase, in edits)."""
        marks = {typist: len(typist.words) for typist in self.typing.typists}
        await eventually(
            lambda: all(len(t.words) >= marks[t] + count for t in self.typing.typists),
            timeout=timeout,
            what=f"{count} more words from every typist",
        )

    def first_word(self, note_id: str) -> str:
        return self.typing.typed()[note_id][0]

    async def check_clients_share_edits(self, when: str, timeout: float = 10) -> None:
        """Everything typed so far reaches every client of the same note."""
        lacking = await self.typing.wait_everyone_has(self.typing.typed(), timeout)
        self.findings.check(
            not lacking, f"{when}: clients do not get each other's edits: {lacking}"
        )

    async def outage(
        self,
        down: str,
        start: Callable[[], object],
        back: str,
        end: Callable[[], object],
        *,
        cold_open: bool,
    ) -> None:
        """Type a little; `start()` the fault and probe the server (`down` names the phase in
        findings); `end()` it and probe again (`back`)."""
        await self.type_words(10)
        await check_health(self.findings, self.http, failing=False, when=f"before: {down}")
        start()
        await self.probe_storage_down(down, cold_open=cold_open)
        end()
        await self.probe_recovered(back)

    async def probe_storage_down(self, when: str, *, cold_open: bool) -> None:
        """Everything the contract says about a server whose storage fails, checked now,
        while the typists go on for FAULT_WORDS words."""
        findings, http = self.findings, self.http
        findings.check(
            await wait_health(http, says_failing),
            f"{when}: /health never said failing in {NOTICE_S} s",
        )
        await check_health(findings, http, failing=True, when=when)
        text = {"text": "replaced while storage is down"}
        await check_write_refused(findings, http, "PUT", f"/api/notes/{REST_NOTE}/text", text, when)
        await check_write_refused(findings, http, "POST", "/api/notes", {"id": "fault-new"}, when)
        await check_live_read(findings, http, NOTES[0], self.first_word(NOTES[0]), when)
        if cold_open:
            await check_cold_open_refused(findings, self.server.url, COLD_NOTE, when)
        await self.type_words(FAULT_WORDS // 2)
        await self.check_clients_share_edits(when)
        await self.type_words(FAULT_WORDS // 2)
        await check_health(findings, http, failing=True, when=f"{when}, {FAULT_WORDS} words later")

    async def probe_recovered(self, when: str) -> None:
        """Storage is back: /health says so, and the typists' edits still flow."""
        self.findings.check(
            await wait_health(self.http, says_ok), f"{when}: /health never said ok in {NOTICE_S} s"
        )
        await check_health(self.findings, self.http, failing=False, when=when)
        await self.type_words(10)
        await self.check_clients_share_edits(when)

    async def finish(self, outages: int = 1, *, optional: bool = False) -> None:
        """Stop typing; every typed word must end up stored exactly once, the server must
        still be the process it was at the start, and its log must say `outages` times per
        note that storing failed and recovered (`optional`: at most that often)."""
        await self.typing.stop()
        typed = self.typing.typed()
        lacking = await self.typing.wait_everyone_has(typed, timeout=20)
        self.findings.check(not lacking, f"the clients never converged: {lacking}")
        self.findings.check(
            await wait_health(self.http, nothing_unsaved),
            f"/health never reported 0 unsaved updates within {NOTICE_S} s of the end: "
            f"{(await health(self.http))[1]}",
        )
        process = self.server.process
        assert process is not None
        self.findings.check(
            process.poll() is None,
            f"the server died during the test (exit code {process.returncode}); log tail:\n"
            f"{self.server.log()[-3000:]}",
        )
        self.findings.add(self.typing.drops())
        failed_writes = (await health(self.http))[1].get("failed_writes")
        await self.typing.close()
        await self.watcher.close()
        self.log = self.server.log()
        # SIGKILL: what is not stored by now would be lost, so the count below proves the
        # edits were stored after the recovery, not by a shutdown flush.
        self.server.kill()
        self.server = LiveServer(self.env, self.cwd, port=self.server.port).start()
        stored = {}
        for note_id in NOTES:
            response = await self.http.get(
                f"/api/notes/{note_id}/content", headers={"accept": "text/plain"}
            )
            assert response.status_code == 200, response.text
            stored[note_id] = response.text
        self.findings.add(count_stored(typed, stored))
        check_log(self.findings, self.log, list(NOTES), outages, optional=optional)
        words = sum(len(w) for w in typed.values())
        self.findings.check(words > 0, "nobody typed anything")
        print(
            f"{words} words typed into {len(typed)} notes, counted in what is stored; "
            f"{failed_writes} failed writes; server log {len(self.log.splitlines())} lines, "
            f"{len(self.log.encode())} bytes"
        )

    def assert_no_problems(self) -> None:
        problems = self.findings.problems
        assert not problems, f"{len(problems)} problems:\n- " + "\n- ".join(problems)
