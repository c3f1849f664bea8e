"""Build hooks: the web editor's built assets become package data of the wheel.

Everything else about the distribution is in pyproject.toml. `python -m build` makes the sdist
(which carries web/'s sources and, when built, web/dist) and then the wheel from it; building
the wheel copies web/dist into the package as server/webdist, building it first (npm ci, then
vite build) when it is missing. server/web.py serves server/webdist when it is there, and
web/dist of a source checkout otherwise. An editable install (pip install -e) copies nothing:
it serves web/dist from the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
WEB = ROOT / "web"
DIST = WEB / "dist"
PACKAGE_DIR = ("server", "webdist")


def built_web() -> Path:
    """web/dist, built first when missing (needs npm, Node >= 20)."""
    if (DIST / "index.html").is_file():
        return DIST
    npm = shutil.which("npm")
    if npm is None or not (WEB / "package.json").is_file():
        raise SystemExit(
            "coscribe: the web editor is not built (web/dist/index.html is missing) and cannot "
            "be built here (needs npm and web/'s sources): run `npm --prefix web ci && npm "
            "--prefix web run build` first"
        )
    subprocess.run([npm, "--prefix", str(WEB), "ci", "--no-audit", "--no-fund"], check=True)
    subprocess.run([npm, "--prefix", str(WEB), "run", "build"], check=True)
    return DIST


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib).joinpath(*PACKAGE_DIR)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(built_web(), target)


class Sdist(sdist):
    def run(self) -> None:
        built_web()  # so the wheel built from this sdist needs no Node
        super().run()


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
