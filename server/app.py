"""create_app(settings, db) -> Starlette. The lifespan starts and stops what the app owns."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from persistence import migrate
from persistence.engine import Database

from . import rest, web
from .jobs import ensure_builtin_schedules
from .rest import problems
from .services import Services, services
from .settings import Settings
from .ws import NoteSocket


async def health(request: Request) -> JSONResponse:
    """Liveness, readiness and the counters an operator looks at first. Always 200 while
    the process serves: /health/ready is the one to route traffic by."""
    return JSONResponse(_health(services(request.app)))


async def live(request: Request) -> JSONResponse:
    return JSONResponse({"live": True})


async def ready(request: Request) -> JSONResponse:
    """200 when the database takes writes, else 503 (with what is known about why)."""
    report = _health(services(request.app))
    return JSONResponse(report, status_code=200 if report["ready"] else 503)


def _health(app: Services) -> dict[str, Any]:
    rooms, persister = app.rooms, app.persister
    ready = app.health.ok and not rooms.closing
    return {
        "status": "ok" if ready else "degraded",
        "live": True,
        "ready": ready,
        "database": {"driver": app.db.driver, **app.health.as_dict()},
        # Redis down keeps an instance ready: it serves its own clients, and catches up after.
        "redis": {"state": "off"} if app.bus is None else app.bus.as_dict(),
        "auth": app.settings.auth,
        "rooms": len(rooms.rooms),
        "idle_rooms": rooms.idle_rooms,
        "connections": sum(len(room.connections) for room in rooms.rooms.values()),
        "sockets": sum(app.addresses.open.values()),
        "loads": rooms.stats.loads,
        "unloads": rooms.stats.unloads,
        "reuses": rooms.stats.reuses,
        "load_failures": rooms.stats.load_failures,
        "stored_updates": persister.stats.updates,
        "flushes": persister.stats.flushes,
        "unsaved_rooms": persister.unsaved_notes,
        "unsaved_updates": persister.unsaved_updates,
        "failed_writes": app.health.failed_writes,
        "jobs_completed": app.worker.completed,
        "jobs_failed": app.worker.failed,
    }


class App(Starlette):
    """Starlette, with websockets routed past the HTTP middleware (gzip, CORS, error pages):
    none of it applies to a socket, and each layer's frame would stay suspended for the
    socket's whole life, about 2 kB per idle socket in all."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return await super().__call__(scope, receive, send)
        scope["app"] = self
        await self.router(scope, receive, send)


def create_app(settings: Settings, db: Database) -> Starlette:
    """The application over an open Database whose schema is already prepared."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The CLI prepared the schema before listening; re-check so an app built by other
        # means never serves from a stale schema.
        migrate.ensure_current(db)
        await asyncio.to_thread(ensure_builtin_schedules, db, settings)
        if services(app).stopped:  # a second lifespan of the same app (tests do that)
            app.state.services = Services.build(settings, db)
        running = services(app)
        running.start()
        try:
            yield
        finally:
            await running.stop()

    middleware = [Middleware(GZipMiddleware, minimum_size=500)]
    if settings.cors:
        # Off unless configured: a page of another origin must not read the API with a
        # visitor's stored token. Tokens travel in a header, never in cookies.
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            ),
        )
    app = App(
        routes=[
            Route("/health", health),
            Route("/health/live", live),
            Route("/health/ready", ready),
            WebSocketRoute("/ws/{note_id:path}", NoteSocket()),
            *rest.routes(),
            *web.routes(),
        ],
        middleware=middleware,
        exception_handlers=problems.HANDLERS,
        lifespan=lifespan,
    )
    app.state.services = Services.build(settings, db)
    return app
