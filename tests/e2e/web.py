"""Building the web editor for the tests that need it, as scripts/test does."""

from __future__ import annotations

import subprocess

from tests.live_server import ROOT


def build_web() -> subprocess.CompletedProcess[str]:
    """scripts/bootstrap.sh's build_web: `npm ci` when needed, then the build when stale."""
    return subprocess.run(
        ["bash", "-c", "source scripts/bootstrap.sh && build_web"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
