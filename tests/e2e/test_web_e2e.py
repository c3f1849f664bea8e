"""The web editor end to end: tests/e2e/e2e.mjs drives Debian's headless Chromium (playwright-core
from web/node_modules, never a downloaded browser) against a real `coscribe serve` with auth on.

The pages sign in with the link the server prints on its first start (`/#token=...`); the
script asks this harness for more tokens (`coscribe token create`) and to revoke them.

Builds web/ first when needed (scripts/bootstrap.sh's build_web). Skips when chromium or npm is
missing, except under CI=true, where that is a failure. Screenshots go to test-output/e2e/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.ci import unavailable
from tests.e2e.web import build_web
from tests.live_server import ROOT, LiveServer, run_cli

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
SCRIPT = Path(__file__).resolve().parent / "e2e.mjs"
OUTPUT = ROOT / "test-output" / "e2e"
TIMEOUT_S = 300
# The link `coscribe serve` prints on a first start, when it created the admin token.
START_URL = re.compile(r"^\s+(http://\S+/#token=(\S+))$", re.MULTILINE)


@pytest.fixture(scope="module")
def built_web() -> None:
    if not CHROMIUM.exists():
        unavailable(
            f"{CHROMIUM} is missing",
            "Run `apt-get install -y chromium` (scripts/test does it) to enable the browser tests.",
        )
    if shutil.which("node") is None or shutil.which("npm") is None:
        unavailable(
            "node and npm are needed to build web/ and drive the browser",
            "Install Node and npm to enable the browser tests.",
        )
    result = build_web()
    if result.returncode != 0:
        pytest.fail(f"building web/ failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def first_start_url(server: LiveServer, timeout: float = 10) -> tuple[str, str]:
    """The sign-in link and admin token the server printed on its first start."""
    deadline = time.monotonic() + timeout
    while not (found := START_URL.search(server.log())):
        assert time.monotonic() < deadline, f"no #token= link in the log:\n{server.log()}"
        time.sleep(0.1)
    return found.group(1), found.group(2)


def harness_command(command: str, env: dict[str, str], cwd: Path, issued: list[str]) -> str:
    """`token-create ROLE WORKSPACE` -> the new token; `token-revoke ID` -> ""."""
    verb, *args = command.split()
    if verb == "token-create":
        role, workspace = args
        cli = ["token", "create", "--workspace", workspace, "--role", role, "--name", "e2e"]
    elif verb == "token-revoke":
        cli = ["token", "revoke", args[0]]
    else:
        raise AssertionError(f"unknown harness command {command!r}")
    result = run_cli(cli, env, cwd)
    assert result.returncode == 0, f"coscribe {' '.join(cli)}: {result.stderr}"
    if verb == "token-create":
        issued.append(result.stdout.strip())
        return issued[-1]
    return ""


def test_web_editor_end_to_end(built_web: None, tmp_path: Path) -> None:
    env = {"COSCRIBE_SQLITE_PATH": str(tmp_path / "notes.sqlite"), "COSCRIBE_AUTH": "true"}
    server = LiveServer(env, tmp_path).start()
    start_url, admin_token = first_start_url(server)
    assert start_url.startswith(f"{server.url}/#token=cs_"), start_url
    issued: list[str] = []
    node = subprocess.Popen(
        ["node", str(SCRIPT), server.url, str(OUTPUT), start_url],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    output: list[str] = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        assert node.stdout is not None and node.stdin is not None
        for line in node.stdout:
            output.append(line.rstrip("\n"))
            if time.monotonic() > deadline:
                break
            command = line.strip()
            answer = ""
            if command == "@@stop-server":
                server.stop()
            elif command == "@@start-server":
                server = LiveServer(env, tmp_path, port=server.port).start()
            elif command.startswith("@@token-"):
                answer = harness_command(command[2:], env, tmp_path, issued)
            else:
                continue
            node.stdin.write(f"ok {answer}".rstrip() + "\n")
            node.stdin.flush()
        try:
            code = node.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            node.kill()
            code = node.wait()
            output.append(f"e2e.mjs did not finish within {TIMEOUT_S}s")
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        server.stop()
    report = "\n".join(output)
    print(report)
    assert code == 0, (
        f"e2e.mjs failed ({code}):\n{report}\n--- server log ---\n{server.log()[-4000:]}"
    )
    assert "e2e: all checks passed" in report
    # Pages send their token in the websocket subprotocol, never in a URL: the log must not show it.
    log = server.log()
    assert log.count(admin_token) == 1, "the admin token appears in the log beyond its link"
    for token in issued:
        assert token not in log, "a token the pages used appears in the server log"
