"""The distribution as a user installs it: `python -m build`, then `pip install` of the wheel
into a fresh virtualenv outside the checkout, then `coscribe` from that virtualenv only."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import click
import httpx
import pytest

from server.cli import cli
from tests.processes import answers_health, free_port, stop_process, wait_ready
from tests.yclient import YClient, eventually

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"/#token=(cs_[0-9a-f]{16}_[A-Za-z0-9_-]{43})")

pytestmark = pytest.mark.slow


def _command_paths(command: click.Command, path: list[str]):
    yield path
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in command.list_commands(context):
            yield from _command_paths(command.get_command(context, name), [*path, name])


def _clean_env(**extra: str) -> dict[str, str]:
    """No variable that could lead the installed command back to the checkout or its venv."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COSCRIBE_", "PYTHON", "VIRTUAL_ENV"))
        and key not in ("DATABASE_URL", "REDIS_URL")
    }
    return {**env, **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ of a fresh virtualenv with the built wheel installed (from an index)."""
    where = tmp_path_factory.mktemp("installed")
    run = dict(check=True, capture_output=True, text=True, timeout=600)
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(where / "dist"), str(ROOT)],
        cwd=where,
        env=_clean_env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels = list((where / "dist").glob("coscribe-*.whl"))
    assert len(wheels) == 1, wheels
    subprocess.run([sys.executable, "-m", "venv", str(where / "venv")], **run)
    pip = [str(where / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    installing = subprocess.run(
        [*pip, str(wheels[0])],
        cwd=where,
        env=_clean_env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installing.returncode == 0, installing.stderr[-3000:]
    return where / "venv" / "bin"


def test_the_installed_package_is_not_the_checkout(installed, tmp_path):
    where = subprocess.run(
        [
            installed / "python",
            "-c",
            "import server, server.web as w; print(server.__file__, w.dist())",
        ],
        cwd=tmp_path,
        env=_clean_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(ROOT) not in where and "site-packages" in where, where
    assert "webdist" in where, where  # the editor comes from package data


def test_every_command_has_working_help(installed, tmp_path):
    for path in _command_paths(cli, []):
        result = subprocess.run(
            [installed / "coscribe", *path, "--help"],
            cwd=tmp_path,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (path, result.stderr)
        assert "Usage: coscribe" in result.stdout, path
        assert "Example: " in result.stdout, path


async def test_serve_from_the_wheel_serves_the_editor_and_syncs(installed, tmp_path):
    port = free_port()
    env = _clean_env(COSCRIBE_SQLITE_PATH=str(tmp_path / "db" / "notes.sqlite"))
    (tmp_path / "db").mkdir()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [installed / "coscribe", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(process, answers_health(url), 60)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{(tmp_path / 'serve.log').read_text()}") from None
        await eventually(lambda: LINK.search((tmp_path / "serve.log").read_text()), timeout=10)
        token = LINK.search((tmp_path / "serve.log").read_text()).group(1)
        async with httpx.AsyncClient(base_url=url) as http:
            page = await http.get("/")
            assert page.status_code == 200, page.text
            assert "text/html" in page.headers["content-type"]
            assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', page.text)
            assert any(a.endswith(".js") for a in assets), page.text
            assert any(a.endswith(".css") for a in assets), page.text
            for asset in assets:
                response = await http.get(asset)
                assert response.status_code == 200, asset
                assert len(response.content) > 100, asset
                kind = "javascript" if asset.endswith(".js") else "css"
                assert kind in response.headers["content-type"], asset
            writer = await YClient(url, f"from-the-wheel?token={token}").connect()
            await asyncio.wait_for(writer.synced.wait(), 10)
            writer.text.insert(0, "typed into an installed server")
            headers = {"Authorization": f"Bearer {token}", "Accept": "text/plain"}

            async def stored() -> bool:
                response = await http.get("/api/notes/from-the-wheel/content", headers=headers)
                return response.text == "typed into an installed server"

            for _ in range(100):
                if await stored():
                    break
                await asyncio.sleep(0.1)
            assert await stored()
            await writer.close()
    finally:
        # uvicorn ends on SIGTERM by raising it again once it has shut down cleanly.
        code = stop_process(process)
        assert code in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()
    assert (tmp_path / "db" / "notes.sqlite").is_file()
