"""Who is asking: the token a request or socket carries, the Principal it stands for, and the
rules of what a Principal may reach.

Roles: an admin reaches every workspace and may manage them; an editor reads and writes the
notes and entities of one workspace; a viewer only reads them. With auth off (loopback only)
everyone is an admin.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from persistence import tokens
from persistence.engine import Database

log = logging.getLogger("coscribe.auth")

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
# Offered as a websocket subprotocol "bearer.TOKEN" by clients that cannot put the token in
# the URL; the server answers with the "coscribe" protocol when it was offered too.
SUBPROTOCOL_PREFIX = "bearer."
SUBPROTOCOL = "coscribe"


@dataclass(frozen=True)
class Principal:
    role: str
    # The one workspace of an editor or viewer; an admin token's home workspace, if any.
    workspace_id: str | None
    token_id: str | None  # None: auth is off

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_write(self) -> bool:
        return self.role != "viewer"

    def reaches(self, workspace_id: str | None) -> bool:
        """May this principal see what belongs to that workspace (None: to no workspace)?"""
        return self.is_admin or (workspace_id is not None and workspace_id == self.workspace_id)

    def __str__(self) -> str:
        return f"token {self.token_id} ({self.role})" if self.token_id else "anonymous admin"


OPEN = Principal("admin", None, None)


class Refused(Exception):
    """No valid token: 401 over HTTP, close 4401 on a socket. The message holds no secret."""


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer` header, if any."""
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def socket_token(
    query: Mapping[str, str], subprotocols: list[str]
) -> tuple[str | None, str | None]:
    """The token a websocket carries, and the subprotocol to answer with (None: none).

    y-websocket can only add query parameters, so `?token=` is the usual way; a client that
    must keep the token out of URLs offers it as the subprotocol "bearer.TOKEN"."""
    offered = next((p for p in subprotocols if p.startswith(SUBPROTOCOL_PREFIX)), None)
    if offered is not None:
        answer = SUBPROTOCOL if SUBPROTOCOL in subprotocols else offered
        return offered[len(SUBPROTOCOL_PREFIX) :], answer
    answer = SUBPROTOCOL if SUBPROTOCOL in subprotocols else None
    return query.get("token") or None, answer


class Authenticator:
    """Turns presented tokens into Principals, checking the database every time: a revoked
    token stops working on the next request."""

    def __init__(self, db: Database, *, enabled: bool) -> None:
        self.db = db
        self.enabled = enabled
        self.refusals: Counter[str] = Counter()  # why tokens were refused, for /metrics

    async def principal(self, token: str | None, peer: str) -> Principal:
        if not self.enabled:
            return OPEN
        if token is None:
            self.refusals["missing token"] += 1
            raise Refused("a token is required")
        verdict = await asyncio.to_thread(self._verify, token)
        if verdict.row is None:
            # The id (never the secret) is what an operator needs to find the token.
            log.info("%s: refused %s%s", peer, verdict.reason, _named(verdict.token_id))
            self.refusals[verdict.reason] += 1
            raise Refused(f"{verdict.reason}")
        row = verdict.row
        return Principal(row["role"], row["workspace_id"], row["id"])

    def _verify(self, token: str) -> tokens.Verdict:
        with self.db.read() as conn:
            return tokens.verify(conn, token)


def _named(token_id: str | None) -> str:
    return f" {token_id}" if token_id else ""
