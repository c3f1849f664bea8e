"""The web editor end to end: tests/e2e/e2e.mjs drives Debian's headless Chromium (playwright-core
from web/node_modules, never a downloaded browser) against a real `coscribe serve`.

Builds web/ first when needed (scripts/bootstrap.sh's build_web). Skips when chromium or npm is
missing, except under CI=true, where that is a failure. Screenshots go to test-output/e2e/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.live_server import ROOT, LiveServer

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
SCRIPT = Path(__file__).resolve().parent / "e2e.mjs"
OUTPUT = ROOT / "test-output" / "e2e"
TIMEOUT_S = 240


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true requires the browser end-to-end tests)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def built_web() -> None:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: `apt-get install -y chromium` (scripts/test does it)")
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node and npm are needed to build web/ and drive the browser")
    result = subprocess.run(
        ["bash", "-c", "source scripts/bootstrap.sh && build_web"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"building web/ failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def test_web_editor_end_to_end(built_web: None, tmp_path: Path) -> None:
    env = {"COSCRIBE_SQLITE_PATH": str(tmp_path / "notes.sqlite")}
    server = LiveServer(env, tmp_path).start()
    node = subprocess.Popen(
        ["node", str(SCRIPT), server.url, str(OUTPUT)],
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
            if command == "@@stop-server":
                server.stop()
            elif command == "@@start-server":
                server = LiveServer(env, tmp_path, port=server.port).start()
            else:
                continue
            node.stdin.write("ok\n")
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
