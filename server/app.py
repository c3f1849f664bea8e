"""create_app(settings, db) -> Starlette. The lifespan starts and stops what the app owns."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send

from persistence import migrate
from persistence.engine import Database

from . import logs, rest, web
from .auth import Refused, bearer
from .jobs import ensure_builtin_schedules
from .rest import problems
from .services import Services, services
from .settings import Settings
from .ws import NoteSocket


async def health(request: Request) -> JSONResponse:
    """Liveness, readiness and the counters an operator looks at first. Always 200 while
    the process serves: /health/ready is the one to route traffic by."""
    return JSONResponse(_health(services(request.app)))


async def metrics(request: Request) -> Response:
    """The Prometheus text format (server/metrics.py), for an admin token (anyone when auth
    is off); COSCRIBE_METRICS_PORT also serves it on a loopback port without one."""
    app = services(request.app)
    client = request.client
    peer = f"{client.host}:{client.port}" if client else "unknown"
    try:
        principal = await app.auth.principal(bearer(request.headers), peer)
    except Refused as exc:
        raise problems.Problem(
            401,
            f"{exc}: /metrics needs `Authorization: Bearer ADMIN_TOKEN`",
            headers={"WWW-Authenticate": 'Bearer realm="coscribe"'},
        ) from None
    if not principal.is_admin:
        raise problems.Problem(403, "/metrics needs an admin token")
    return Response(await app.metrics.render(), media_type=CONTENT_TYPE_LATEST)


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
        if scope["type"] == "http":
            return await self._http(scope, receive, send)
        if scope["type"] != "websocket":
            return await super().__call__(scope, receive, send)
        scope["app"] = self
        await self.router(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Give the request an id (the client's X-Request-ID if sane; sent back, and on every
        log line of the request), and count it by method, route template (never the raw
        path: ids would make a series each) and status, for /metrics."""
        status = 500  # what the client gets when the app fails before answering
        headers = Headers(scope=scope)
        request_id = logs.request_id(headers.get("x-request-id"))
        logs.REQUEST_ID.set(request_id)
        client = scope.get("client")
        if client:
            logs.CONNECTION.set(f"{client[0]}:{client[1]}")

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await super().__call__(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            services(self).http[scope["method"], route, status] += 1


def create_app(settings: Settings, db: Database) -> Starlette:
    """The application over an open Database whose schema is already prepared."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The CLI prepared the schema before listening; re-check so an app built by other
        # means never serves from a stale schema.
        migrate.ensure_current(db)
        await asyncio.to_thread(migrate.ensure_default_workspace, db)
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
            Route("/metrics", metrics),
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
