"""The REST API under /api, described by the OpenAPI document at /openapi.json."""

from __future__ import annotations

from importlib.metadata import version

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import (
    agents,
    background_tasks,
    codebases,
    conversations,
    events,
    me,
    notes,
    schedules,
    search,
    tasks,
    tokens,
    webhooks,
    workspaces,
)
from .api import Api
from .openapi import document

RESOURCES = (
    me,
    tokens,
    workspaces,
    notes,
    agents,
    codebases,
    conversations,
    tasks,
    background_tasks,
    schedules,
    search,
    events,
    webhooks,
)


def build() -> Api:
    api = Api()
    for module in RESOURCES:
        module.register(api)
    return api


def routes() -> list[Route]:
    api = build()
    spec = document(api, title="coscribe", version=version("coscribe"))

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(spec)

    return [*api.routes(), Route("/openapi.json", openapi, include_in_schema=False)]
