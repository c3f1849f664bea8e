"""create_app(settings, db) -> Starlette. The lifespan starts and stops what the app owns."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from persistence import migrate
from persistence.engine import Database

from . import rest, web
from .auth import Authenticator
from .jobs import ensure_builtin_schedules
from .persister import Persister
from .registry import RoomRegistry
from .rest import problems
from .sessions import SessionWatch
from .settings import Settings
from .worker import Worker
from .ws import Addresses, note_socket


async def health(request: Request) -> JSONResponse:
    state = request.app.state
    rooms: RoomRegistry = state.rooms
    persister: Persister = state.persister
    return JSONResponse(
        {
            "status": "ok",
            "database": state.db.driver,
            "auth": state.settings.auth,
            "rooms": len(rooms.rooms),
            "connections": sum(len(room.connections) for room in rooms.rooms.values()),
            "sockets": sum(state.addresses.open.values()),
            "loads": rooms.stats.loads,
            "unloads": rooms.stats.unloads,
            "stored_updates": persister.stats.updates,
            "flushes": persister.stats.flushes,
            "jobs_completed": request.app.state.worker.completed,
            "jobs_failed": request.app.state.worker.failed,
        }
    )


def create_app(settings: Settings, db: Database) -> Starlette:
    """The application over an open Database whose schema is already prepared."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The CLI prepared the schema before listening; re-check so an app built by other
        # means never serves from a stale schema.
        migrate.ensure_current(db)
        await asyncio.to_thread(ensure_builtin_schedules, db, settings)
        worker = Worker(db, settings)
        persister = Persister(
            db,
            window_s=settings.flush_window_ms / 1000,
            retry_max_s=settings.flush_retry_max_ms / 1000,
            compact_after=settings.compact_after_updates,
            on_compaction_queued=worker.wake,
        )
        rooms = RoomRegistry(db, settings, persister)
        watch = SessionWatch(db, rooms, settings.auth_recheck_s)
        app.state.persister = persister
        app.state.rooms = rooms
        app.state.worker = worker
        persister.start()
        rooms.start()
        worker.start()
        watch.start()
        try:
            yield
        finally:
            await watch.stop()
            await worker.stop()
            await rooms.shutdown(settings.shutdown_timeout_s)
            await persister.stop()

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
    app = Starlette(
        routes=[
            Route("/health", health),
            WebSocketRoute("/ws/{note_id:path}", note_socket),
            *rest.routes(),
            *web.routes(),
        ],
        middleware=middleware,
        exception_handlers=problems.HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.auth = Authenticator(db, enabled=settings.auth)
    app.state.addresses = Addresses()
    return app
