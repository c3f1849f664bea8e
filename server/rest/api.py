"""A small declarative layer over Starlette: each endpoint declares its path, method, body,
query and response models once, and gets request validation, problem responses and its
OpenAPI description from that one declaration.

Handlers receive a Call and return a pydantic model, a dict/list (sent as JSON), or a
Starlette Response. Database work runs in a worker thread inside a transaction the handler
opens with `await call.write(fn)` or `await call.read(fn)`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from persistence.engine import Database

from ..auth import OPEN, Principal
from ..health import StorageUnavailable
from ..services import Services, services
from . import access
from .problems import Problem

T = TypeVar("T")
Handler = Callable[["Call"], Awaitable[Any]]
JSON_TYPES = ("application/json",)


@dataclass
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None  # a pydantic model, or an OpenAPI schema dict, or None (no body)
    status: int = 200
    media_type: str = "application/json"
    request_media_type: str | None = None  # a raw (non-JSON) body of this type
    errors: tuple[int, ...] = ()
    description: str = ""
    access: str | None = None  # "read", "write" or "admin"; None: read for GET, else write


@dataclass
class Api:
    endpoints: list[Endpoint] = field(default_factory=list)

    def route(self, method: str, path: str, **options: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            summary = options.pop("summary", None) or (handler.__doc__ or "").strip().split("\n")[0]
            self.endpoints.append(Endpoint(method, path, handler, summary=summary, **options))
            return handler

        return register

    def include(self, other: Api) -> None:
        """Add the endpoints a module declared on its own Api."""
        self.endpoints.extend(other.endpoints)

    def routes(self) -> list[Route]:
        by_path: dict[str, dict[str, Endpoint]] = {}
        for endpoint in self.endpoints:
            by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint
        return [
            Route(path, _dispatcher(methods), methods=list(methods))
            for path, methods in by_path.items()
        ]


class Call:
    """One request to one endpoint."""

    def __init__(self, request: Request, endpoint: Endpoint) -> None:
        self.request = request
        self.endpoint = endpoint
        self.path: dict[str, str] = dict(request.path_params)
        self.query: Any = None
        self.body: Any = None
        self.raw: bytes = b""
        self.principal: Principal = OPEN

    @property
    def services(self) -> Services:
        return services(self.request.app)

    @property
    def db(self) -> Database:
        return self.services.db

    async def write(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run fn(conn) in a worker thread, in a read-write transaction. An answer comes
        within storage_wait_s: StorageUnavailable (503) when the database does not take it."""

        def run() -> T:
            with self.db.begin() as conn:
                return fn(conn)

        wait = self.services.settings.storage_wait_s
        try:
            async with asyncio.timeout(wait):
                return await self._storing(run)
        except TimeoutError:
            self.services.health.failed("a write took longer than storage_wait_s")
            raise StorageUnavailable(
                f"storage did not answer within {wait}s", retry_after_s=wait
            ) from None

    async def read(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run fn(conn) in a worker thread, in a read-only transaction."""

        def run() -> T:
            with self.db.read() as conn:
                return fn(conn)

        return await self._storing(run, write=False)

    async def _storing(self, run: Callable[[], T], *, write: bool = True) -> T:
        # Stores turn every driver error caused by the input into a StoreError; what is left
        # (connection refused, disk full, database locked) is storage failing: 503.
        try:
            return await run_in_threadpool(run)
        except (SQLAlchemyError, OSError) as exc:
            self.services.health.failed(exc, write=write)
            raise StorageUnavailable(
                "storage is unavailable", retry_after_s=self.services.settings.storage_wait_s
            ) from exc


def _dispatcher(methods: dict[str, Endpoint]) -> Callable[[Request], Awaitable[Response]]:
    async def dispatch(request: Request) -> Response:
        endpoint = methods[request.method if request.method != "HEAD" else "GET"]
        call = Call(request, endpoint)
        await access.authorize(call)
        await _parse(call)
        await access.check_references(call)
        result = await endpoint.handler(call)
        if isinstance(result, Response):
            return result
        if result is None:
            return Response(status_code=204 if endpoint.status == 200 else endpoint.status)
        model = endpoint.response
        if (
            isinstance(model, type)
            and issubclass(model, BaseModel)
            and not isinstance(result, model)
        ):
            # Send exactly the documented shape: store rows carry columns the API leaves out.
            result = model.model_validate(result)
        content = to_jsonable_python(result, by_alias=True)
        return JSONResponse(content, status_code=endpoint.status)

    return dispatch


async def _parse(call: Call) -> None:
    endpoint, request = call.endpoint, call.request
    if endpoint.query is not None:
        params = dict(request.query_params)
        if "workspace_id" in endpoint.query.model_fields:
            await access.resolve_workspace(call, params)
        access.scope_workspace(call, params, "query")
        call.query = _validate(endpoint.query, params, "query")
    if endpoint.body is None and endpoint.request_media_type is None:
        return
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    expected = (endpoint.request_media_type,) if endpoint.request_media_type else JSON_TYPES
    if media_type not in expected:
        raise Problem(415, f"expected a body of type {expected[0]}, got {media_type or 'none'}")
    limit = _body_limit(call)
    call.raw = await read_body(request, limit)
    if endpoint.body is None:
        return
    try:
        data = json.loads(call.raw)
    except (ValueError, RecursionError):
        raise Problem(400, "the body is not valid JSON") from None
    _refuse_lone_surrogates(call.raw, data)
    if "workspace_id" in endpoint.body.model_fields:
        await access.resolve_workspace(call, data)
    access.scope_workspace(call, data, "body")
    call.body = _validate(endpoint.body, data, "body")


def _refuse_lone_surrogates(raw: bytes, data: Any) -> None:
    """422 for a string holding half of a UTF-16 surrogate pair.

    JSON may write one ("\\ud800"), and json.loads lets one through even as raw UTF-8 bytes,
    but it is not a character: it cannot be encoded to UTF-8, stored or put into a document.
    """
    if b"\\u" not in raw and b"\xed" not in raw:
        return  # neither an escape nor a UTF-8 lead byte of the surrogate range
    where = _lone_surrogate(data)
    if where is not None:
        location = ["body", *where]
        message = "a lone UTF-16 surrogate is not a character; send valid Unicode text"
        raise Problem(
            422,
            f"{'.'.join(location)}: {message}",
            errors=[{"location": location, "message": message}],
        )


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _lone_surrogate(data: Any) -> list[str] | None:
    """Where the first string (value or key) holding a lone surrogate is; None: nowhere.
    Walked with a stack: a body may nest as deep as json.loads allows."""
    stack: list[tuple[Any, list[str]]] = [(data, [])]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return where
        elif isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return [*where, key.encode("utf-8", "backslashreplace").decode()]
                stack.append((item, [*where, key]))
        elif isinstance(value, list):
            stack.extend((item, [*where, str(index)]) for index, item in enumerate(value))
    return None


def _body_limit(call: Call) -> int:
    settings = call.services.settings
    if call.endpoint.request_media_type:
        return settings.max_update_bytes
    return settings.max_body_bytes


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) one over `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    # isdigit() alone also accepts digits int() refuses, such as "²" (a latin-1 header byte).
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise Problem(413, f"the body is over the limit of {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Problem(413, f"the body is over the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        # The client left, or was cut off for a body too slow (408, see handshake.py): this
        # answer goes nowhere, but the request ends without a traceback.
        raise Problem(400, "the connection closed before the body was complete") from None
    return b"".join(chunks)


def _validate(model: type[BaseModel], data: Any, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"location": [where, *map(str, error["loc"])], "message": error["msg"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        first = errors[0]
        detail = f"{'.'.join(first['location'])}: {first['message']}"
        raise Problem(422, detail, errors=errors) from None


_PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def path_parameters(path: str) -> list[str]:
    return _PATH_PARAM.findall(path)


def openapi_path(path: str) -> str:
    return _PATH_PARAM.sub(r"{\1}", path)
