"""The browser editor: its built assets served at / with cache headers.

An installed wheel carries them as package data (server/webdist, copied there from web/dist
when the wheel is built: see setup.py); a source checkout serves web/dist itself.

Built files under /assets/ have content-hashed names, so they are cached for a year; index.html
is `no-cache` so a new build is picked up at once. Without a build, / answers 503 with a page
that says how to make one. The directory is looked up on every request, so building while the
server runs is enough.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

PACKAGED = Path(__file__).resolve().parent / "webdist"
SOURCE = Path(__file__).resolve().parent.parent / "web" / "dist"
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"

MISSING_BUILD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>coscribe: web editor not built</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 3em auto; padding: 0 1em">
<h1>The web editor is not built</h1>
<p>This coscribe server is running and its API is available under <code>/api</code>, but the
browser editor has not been built on this machine (<code>web/dist</code> is missing).</p>
<p>Start the server with <code>scripts/serve</code>, which builds it when needed, or build it
yourself with <code>npm --prefix web ci &amp;&amp; npm --prefix web run build</code>, then reload
this page.</p>
</body></html>
"""


class _Assets(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = IMMUTABLE
        return response


def dist() -> Path:
    """Where the built editor is: the wheel's copy when installed, else the checkout's."""
    return PACKAGED if (PACKAGED / "index.html").is_file() else SOURCE


class _LazyAssets:
    """StaticFiles over the build's assets/, created once the build exists."""

    def __init__(self) -> None:
        self._static: _Assets | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._static is None:
            assets = dist() / "assets"
            if not assets.is_dir():
                await HTMLResponse(MISSING_BUILD, status_code=404)(scope, receive, send)
                return
            self._static = _Assets(directory=assets)
        await self._static(scope, receive, send)


async def index(request: Request) -> Response:
    page = dist() / "index.html"
    if not page.is_file():
        return HTMLResponse(MISSING_BUILD, status_code=503, headers={"Cache-Control": "no-store"})
    return FileResponse(page, media_type="text/html", headers={"Cache-Control": NO_CACHE})


async def service_worker(request: Request) -> Response:
    """The page's service worker (web/public/sw.js): keeps the page usable offline. Never
    cached by HTTP, so a new build's worker is picked up at once."""
    script = dist() / "sw.js"
    if not script.is_file():
        return Response(status_code=404)
    return FileResponse(script, media_type="text/javascript", headers={"Cache-Control": NO_CACHE})


def routes() -> list[BaseRoute]:
    """/, /index.html, /sw.js and /assets/*; add them after every other route."""
    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/index.html", index, methods=["GET", "HEAD"]),
        Route("/sw.js", service_worker, methods=["GET", "HEAD"]),
        Mount("/assets", app=_LazyAssets(), name="assets"),
    ]
