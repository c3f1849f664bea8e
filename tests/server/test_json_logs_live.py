"""COSCRIBE_LOG_FORMAT=json on a real server process: every line it writes to stderr, its own
and uvicorn's, is one JSON object with the fields the docs name, and no token in any."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from datetime import datetime

import httpx

from tests.live_server import COSCRIBE, clean_env, run_cli
from tests.processes import answers_health, free_port, stop_process, wait_ready
from tests.server.test_cli import assert_one_line_error
from tests.yclient import YClient, eventually

LINK = re.compile(r"/#token=(cs_[0-9a-f]{16}_[A-Za-z0-9_-]{43})")


async def test_every_stderr_line_is_a_json_record_with_context_and_no_token(tmp_path):
    port = free_port()
    env = {
        "COSCRIBE_SQLITE_PATH": str(tmp_path / "j.sqlite"),
        "COSCRIBE_AUTH": "true",
        "COSCRIBE_LOG_FORMAT": "json",
    }
    out, err = (tmp_path / "stdout.log").open("w"), (tmp_path / "stderr.log").open("w")
    process = subprocess.Popen(
        [*COSCRIBE, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=clean_env(env, tmp_path),
        cwd=tmp_path,
        stdout=out,
        stderr=err,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, answers_health(url), 30)
        # The first admin token's link goes to the operator's terminal (stdout), not the log.
        admin = LINK.search((tmp_path / "stdout.log").read_text()).group(1)
        editor = run_cli(
            ["token", "create", "--role", "editor", "--workspace", "default"], env, tmp_path
        ).stdout.strip()
        headers = {"Authorization": f"Bearer {admin}", "X-Request-ID": "trace-42"}
        answered = httpx.get(f"{url}/api/notes", headers=headers)
        assert answered.status_code == 200 and answered.headers["x-request-id"] == "trace-42"
        not_an_id = {"X-Request-ID": "not an id; " * 10 + "end"}
        generated = httpx.get(f"{url}/api/notes", headers=not_an_id)
        assert generated.status_code == 401
        assert re.fullmatch(r"[0-9a-f]{16}", generated.headers["x-request-id"])
        writer = await YClient(url, f"logged-note?token={editor}").connect()
        await asyncio.wait_for(writer.synced.wait(), 10)
        writer.text.insert(0, "hello")
        await writer.send(b"\x00\x09")  # an unknown sync subtype: a bad frame, logged, closed
        assert await writer.wait_closed() == 1007
    finally:
        stop_process(process)
        out.close()
        err.close()

    lines = (tmp_path / "stderr.log").read_text().splitlines()
    assert len(lines) > 5
    records = []
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        assert "color_message" not in record and "\x1b" not in line, line
        datetime.fromisoformat(record["time"])
        records.append(record)
    loggers = {r["logger"] for r in records}
    assert {"coscribe", "uvicorn.error", "uvicorn.access", "coscribe.ws"} <= loggers, loggers
    assert any(r["message"].startswith("database sqlite") for r in records)

    access = [r for r in records if r["logger"] == "uvicorn.access"]
    traced = [r for r in access if r.get("request_id") == "trace-42"]
    assert len(traced) == 1 and "GET /api/notes" in traced[0]["message"], access
    assert traced[0]["connection"].startswith("127.0.0.1:")
    assert any(r.get("request_id") == generated.headers["x-request-id"] for r in access)

    bad_frame = [r for r in records if "bad frame" in r["message"]]
    assert len(bad_frame) == 1, records
    assert bad_frame[0]["note"] == "logged-note" and bad_frame[0]["level"] == "INFO"
    assert bad_frame[0]["connection"].startswith("127.0.0.1:")
    accepted = [r for r in records if "WebSocket /ws/logged-note" in r["message"]]
    assert accepted and accepted[0]["note"] == "logged-note", records
    assert "token=[redacted]" in accepted[0]["message"]

    everything = (tmp_path / "stderr.log").read_text()
    for token in (admin, editor):
        assert token.split("_", 2)[2] not in everything


def test_an_unknown_log_format_stops_start_up_with_one_line(tmp_path):
    result = run_cli(["serve"], {"COSCRIBE_LOG_FORMAT": "xml"}, tmp_path)
    assert_one_line_error(result, "COSCRIBE_LOG_FORMAT", "xml", "text or json")


async def test_text_logs_stay_as_they_were(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [*COSCRIBE, "serve", "--port", str(port)],
        env=clean_env({"COSCRIBE_SQLITE_PATH": str(tmp_path / "t.sqlite")}, tmp_path),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, answers_health(url), 30)
        await eventually(lambda: httpx.get(f"{url}/health").status_code == 200)
    finally:
        stop_process(process)
    text = process.stderr.read()
    assert "INFO:     Uvicorn running on" in text  # uvicorn's own format
    assert re.search(r"^\d{4}-\d\d-\d\d .* INFO coscribe: ", text, re.MULTILINE), text
    assert not any(line.startswith("{") for line in text.splitlines())
