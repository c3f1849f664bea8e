"""Errors as RFC 9457 problem documents (application/problem+json)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from persistence.errors import ConflictError, InvalidError, NotFoundError, SchemaError

from ..health import StorageUnavailable
from ..room import NoteFull

PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """Raise from a handler to answer with a problem document."""

    def __init__(
        self, status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(status: int, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status}
    body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


async def on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    response = problem_response(exc.status, exc.detail, **exc.extra)
    response.headers.update(exc.headers)
    return response


async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    response = problem_response(exc.status_code, exc.detail or TITLES.get(exc.status_code, ""))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def on_store_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, NotFoundError):
        return problem_response(404, str(exc))
    if isinstance(exc, ConflictError):
        return problem_response(409, str(exc))
    if isinstance(exc, InvalidError):
        return problem_response(422, str(exc))
    if isinstance(exc, SchemaError):
        return problem_response(503, str(exc))
    return problem_response(500, "internal error")


async def on_note_full(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(413, str(exc))


async def on_storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StorageUnavailable)
    response = problem_response(503, str(exc))
    response.headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    return response


HANDLERS = {
    NoteFull: on_note_full,
    StorageUnavailable: on_storage_unavailable,
    Problem: on_problem,
    HTTPException: on_http_exception,
    NotFoundError: on_store_error,
    ConflictError: on_store_error,
    InvalidError: on_store_error,
    SchemaError: on_store_error,
}
