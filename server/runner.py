"""Running the app under uvicorn, with coscribe's own graceful shutdown.

On SIGTERM/SIGINT: stop accepting, close every websocket with 1001, store every pending
update, then let uvicorn finish (uvicorn alone would close sockets with 1012 and only then
tell the app).
"""

from __future__ import annotations

import gc
import logging
import socket
import sys

import uvicorn
from starlette.applications import Starlette

from persistence import tokens
from persistence.engine import Database

from . import listening
from .handshake import GuardedHttpProtocol
from .logs import redact_request_logs
from .output import DirectWebSocketProtocol
from .services import services
from .settings import Settings

log = logging.getLogger("coscribe")


class Server(uvicorn.Server):
    db: Database
    settings: Settings

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        except SystemExit:
            if not self.lifespan.should_exit:  # the app started; the port did not bind
                _bind_hint(self.config.host, self.config.port, self.settings)
            raise
        if not self.started:
            return
        url = listening.local_url(self.config.host, _port(self.servers))
        listening.record(self.db.config, url)
        if self.settings.auth:
            # Only now that the port is ours: a start that cannot listen creates no token
            # whose link nobody saw. Synchronous on purpose: nothing is served before the
            # link is printed (one small write, once per database).
            token = first_admin_token(self.db)
            if token:
                _announce(self.config.host, _port(self.servers), token)
            else:
                # Tokens exist: the first one's link was shown once. Say how to get in anyway.
                log.info(
                    "auth is on: clients need a token (`coscribe token list` shows them; "
                    "`coscribe token create --role admin` makes an admin one)"
                )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting before closing the rooms
        app: Starlette = self.config.loaded_app
        # Close the rooms (1001) and store everything before uvicorn closes the sockets
        # (with 1012) and runs the lifespan's shutdown, whose own stop() then returns at once.
        await services(_find_app(app)).stop()
        listening.forget(self.db.config)
        await super().shutdown(sockets)


def first_admin_token(db: Database) -> str | None:
    """On a first start (no token at all), an admin token for the operator, shown once."""
    with db.begin() as conn:
        if tokens.count(conn):
            return None
        issued = tokens.issue(conn, "admin", name="created on first start")
    return issued.token


def _port(servers: list) -> int:
    return servers[0].sockets[0].getsockname()[1] if servers and servers[0].sockets else 0


def _bind_hint(host: str, port: int, settings: Settings) -> None:
    token = " No access token was created: the first start that listens prints its link."
    hint = (
        f"cannot listen on {host}:{port} (the line above says why): another process may hold "
        "the port; stop it, or choose another with --port or COSCRIBE_PORT (0 picks a free "
        f"one).{token if settings.auth else ''}"
    )
    if settings.log_format == "json":
        log.error("%s", hint)
    else:
        print(f"coscribe: error: {hint}", file=sys.stderr, flush=True)


def _announce(host: str, port: int, token: str) -> None:
    """Print the first admin token as a URL that opens the web editor signed in. The token
    goes in the fragment, which browsers never send to servers or put in access logs."""
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    print(
        "\n"
        "  coscribe: no access token existed, so an admin token was created.\n"
        "  Open the web editor with it (it is shown only this once):\n\n"
        f"    http://{shown}:{port}/#token={token}\n\n"
        "  More tokens: coscribe token create --workspace WORKSPACE --role editor\n"
        "  Lost this link? coscribe token create --role admin makes another admin token.\n",
        flush=True,
    )


def _find_app(app: object) -> Starlette:
    # uvicorn wraps the app in middleware proxies; each keeps the next one as `.app`.
    while not isinstance(app, Starlette):
        app = app.app  # type: ignore[attr-defined]
    return app


def run(app: Starlette, settings: Settings, db: Database) -> None:
    """Serve until SIGTERM/SIGINT. With auth on, the first start that listens creates an
    admin token and prints its link."""
    config = uvicorn.Config(
        app,
        # JSON: uvicorn's loggers keep no handlers of their own and reach the root handler
        # (server/logs.py:configure), so its lines are JSON objects too.
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        lifespan="on",
        ws=DirectWebSocketProtocol.configured(settings.max_updates_per_s, settings.update_burst),
        # Compression makes every socket's frames different bytes, so a broadcast could not
        # write one frame to all; Yjs updates are small and y-websocket's Node server does
        # not compress either.
        ws_per_message_deflate=False,
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_interval_s,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        http=GuardedHttpProtocol.configured(
            settings.handshake_timeout_s,
            settings.max_handshake_bytes,
            settings.body_timeout_s,
            settings.max_http_connections_per_address,
        ),
    )
    # The cyclic garbage collector's full passes walk every object the libraries created at
    # import (SQLAlchemy, pydantic, ...) and stalled the event loop for over 100 ms at a time
    # under load (p99 fan-out latency 185 ms -> 23 ms with this, bench scenario b). Freeze
    # what exists now, and collect the young generation less often.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    redact_request_logs()  # after uvicorn.Config, which configures its loggers
    server = Server(config)
    server.db, server.settings = db, settings
    server.run()
