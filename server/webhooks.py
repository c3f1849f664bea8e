"""Webhook deliveries over HTTP, and the checks on a URL before it is registered.

A delivery is a job of the durable queue (kind ``deliver_webhook``, queued with its event:
persistence/webhooks.py). A worker of its own runs them, so a receiver that hangs delays other
deliveries, never compaction or retention, and a job runs on a worker thread, so nothing waits
on the event loop. Each attempt POSTs the event as JSON, signed with the webhook's secret:
``X-Coscribe-Signature: sha256=HEX`` where HEX is the HMAC-SHA256 of the exact body bytes. A
2xx answer is success; anything else (another status, a redirect, a refused connection, no
answer within ``webhook_timeout_s``) is recorded on the delivery and retried after
``webhook_retry_ms``, doubling, until the webhook's ``max_attempts``; then it is failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from persistence import events, webhooks
from persistence.engine import Database
from persistence.stores import background_tasks

from .jobs import JobContext, PermanentError, RetryLater
from .settings import Settings
from .worker import Worker

log = logging.getLogger("coscribe.webhooks")

SIGNATURE_HEADER = "X-Coscribe-Signature"
USER_AGENT = "coscribe-webhooks/1"
MAX_RESPONSE_BYTES = 64 * 1024
MAX_RETRY_S = 3600


class DeliveryFailed(RetryLater):
    """This attempt failed; the job is retried after the webhook backoff."""


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """The ``deliver_webhook`` job: one attempt of one delivery (on a worker thread)."""
    delivery_id = payload.get("delivery_id")
    if not isinstance(delivery_id, str):
        raise PermanentError("payload needs a delivery_id string")
    with ctx.db.read() as conn:
        delivery = webhooks.get_delivery(conn, delivery_id)
        if delivery is None:
            return {"skipped": "the delivery or its webhook was deleted"}
        hook = webhooks.get(conn, delivery["webhook_id"], with_secret=True)
        event = events.get(conn, delivery["event_id"])
    if event is None:
        _record(ctx.db, delivery_id, final=True, error="the event expired before delivery")
        raise PermanentError("the event expired before it was delivered")
    body = json.dumps(
        {"delivery_id": delivery_id, "webhook_id": hook["id"], "event": events.message(event)},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Coscribe-Event": event["kind"],
        "X-Coscribe-Event-Id": str(event["id"]),
        "X-Coscribe-Delivery": delivery_id,
        SIGNATURE_HEADER: sign(hook["secret"], body),
    }
    final = delivery["attempts"] + 1 >= hook["max_attempts"]
    try:
        status = post(hook["url"], body, headers, ctx.settings.webhook_timeout_s)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        error = _describe(exc, ctx.settings.webhook_timeout_s)
        _record(ctx.db, delivery_id, final=final, error=error)
        _fail(final, f"{hook['url']}: {error}")
    if not 200 <= status < 300:
        error = f"the receiver answered {status}"
        if 300 <= status < 400:
            error += " (redirects are not followed)"
        _record(ctx.db, delivery_id, final=final, error=error, status_code=status)
        _fail(final, f"{hook['url']}: {error}")
    _record(ctx.db, delivery_id, succeeded=True, status_code=status)
    return {"delivery_id": delivery_id, "status_code": status}


def _fail(final: bool, message: str) -> None:
    if final:
        raise PermanentError(message)
    raise DeliveryFailed(message)


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {timeout_s}s"
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}"


def _record(
    db: Database,
    delivery_id: str,
    *,
    succeeded: bool = False,
    final: bool = False,
    status_code: int | None = None,
    error: str | None = None,
) -> None:
    with db.begin() as conn:
        webhooks.record_attempt(
            conn,
            delivery_id,
            succeeded=succeeded,
            final=final,
            status_code=status_code,
            error=error,
        )


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """POST and return the status. The timeout bounds the connect and every read; the
    response body is read (up to a bound) and dropped. Redirects are not followed."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname or "",
            parts.port,
            timeout=timeout_s,
            context=ssl.create_default_context(),
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return response.status
    finally:
        connection.close()


class WebhookWorker(Worker):
    """A worker that runs only deliveries, with the webhook retry schedule (schedules are
    fired by the main worker)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        super().__init__(db, settings, handlers={webhooks.JOB_KIND: deliver})

    def _fire_schedules(self) -> None:
        return None

    def _fail(self, job: dict[str, Any], exc: BaseException, retry: bool) -> None:
        exponent = min(max(job["attempts"] - 1, 0), 20)
        delay = min(self.settings.webhook_retry_ms / 1000 * 2**exponent, MAX_RETRY_S)
        with self.db.begin() as conn:
            background_tasks.fail(
                conn, job["id"], self.id, exc, retry=retry, retry_delay_seconds=delay
            )
        self.failed += 1


# --- checking a URL before it is registered ----------------------------------------------------

LOCAL_BINDS = ("0.0.0.0", "::", "")


async def points_at_self(url: str, own: Iterable[tuple[str, int]], timeout_s: float) -> bool:
    """Would a POST to ``url`` reach this server? ``own`` is where it is reached: the
    address the request came in on, the configured host and port, the request's Host.

    The URL's host is resolved (on a thread, bounded): a name for a loopback or listening
    address is caught as well as the literal address.
    """
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    own = [(h.lower().strip("[]"), p) for h, p in own]
    ports = {p for _, p in own}
    if port not in ports:
        return False
    if (host, port) in own:
        return True
    try:
        async with asyncio.timeout(timeout_s):
            infos = await asyncio.to_thread(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    except (TimeoutError, OSError):
        return False  # it cannot be reached now; delivering will say so
    targets = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    for own_host, own_port in own:
        if own_port != port:
            continue
        if own_host in LOCAL_BINDS:
            # Listening on every interface: any address of this machine is the server.
            if any(t.is_loopback or t.is_unspecified or _is_local(t) for t in targets):
                return True
            continue
        try:
            address = ipaddress.ip_address(own_host)
        except ValueError:
            continue
        if address in targets or (address.is_loopback and any(t.is_loopback for t in targets)):
            return True
    return False


def _is_local(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Is this an address of one of this machine's interfaces? (binding to it succeeds)"""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True
