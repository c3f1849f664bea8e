"""The web editor's own checks, run with the rest of the suite: ESLint over web/ (flat config
in web/eslint.config.js) and the Vitest unit tests of its pure parts (web/test/), among them
the check that web/src/closecodes.js holds the codes of server/closecodes.py.

Needs node and npm and web/node_modules (scripts/bootstrap.sh's build_web installs them from
web/package-lock.json); skips without them, except under CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.ci import unavailable
from tests.e2e.web import build_web
from tests.live_server import ROOT

WEB = ROOT / "web"


@pytest.fixture(scope="module")
def web_dependencies() -> None:
    if shutil.which("npm") is None:
        unavailable("npm is missing", "Install Node and npm to run the web editor's checks.")
    result = build_web()
    if result.returncode != 0:
        pytest.fail(f"installing web/ failed:\n{result.stderr[-3000:]}")


@pytest.mark.parametrize("script", ["lint", "test"])
def test_web_script_passes(web_dependencies: None, script: str) -> None:
    result = subprocess.run(
        ["npm", "run", "--silent", script],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
    )
    assert result.returncode == 0, (
        f"npm run {script}:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    )
