"""The OpenAPI 3.1 document, built from the endpoints' own declarations."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .api import Api, Endpoint, openapi_path, path_parameters
from .problems import PROBLEM_JSON, TITLES

REF = "#/components/schemas/{model}"
PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}


def _models(api: Api) -> list[tuple[type[BaseModel], str]]:
    seen: dict[tuple[type[BaseModel], str], None] = {}
    for endpoint in api.endpoints:
        if endpoint.body is not None:
            seen[(endpoint.body, "validation")] = None
        if _is_model(endpoint.response):
            seen[(endpoint.response, "serialization")] = None
    return list(seen)


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def document(api: Api, *, title: str, version: str) -> dict[str, Any]:
    keys, schemas = models_json_schema(_models(api), ref_template=REF)
    components = dict(schemas.get("$defs", {}))
    components["Problem"] = PROBLEM_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in api.endpoints:
        operation = _operation(endpoint, keys)
        paths.setdefault(openapi_path(endpoint.path), {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `coscribe token create`.",
                }
            },
        },
        "security": [{"bearer": []}],
    }


def _operation(endpoint: Endpoint, keys: dict[Any, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": endpoint.handler.__name__,
        "tags": [endpoint.tag],
    }
    if endpoint.description:
        operation["description"] = endpoint.description
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in path_parameters(endpoint.path)
    ]
    if endpoint.query is not None:
        schema = endpoint.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            parameters.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": keys[(endpoint.body, "validation")]}},
        }
    elif endpoint.request_media_type:
        operation["requestBody"] = {
            "required": True,
            "content": {
                endpoint.request_media_type: {"schema": {"type": "string", "format": "binary"}}
            },
        }
    responses: dict[str, Any] = {}
    if endpoint.response is None:
        responses[str(endpoint.status if endpoint.status != 200 else 204)] = {"description": "Done"}
    else:
        if _is_model(endpoint.response):
            schema = keys[(endpoint.response, "serialization")]
        else:
            schema = endpoint.response
        responses[str(endpoint.status)] = {
            "description": "OK",
            "content": {endpoint.media_type: {"schema": schema}},
        }
    for status in sorted(_error_statuses(endpoint)):
        responses[str(status)] = {
            "description": TITLES.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": REF.format(model="Problem")}}},
        }
    operation["responses"] = responses
    return operation


def _error_statuses(endpoint: Endpoint) -> set[int]:
    # Every call needs a token (401), and one whose role or workspace does not reach gets 403.
    statuses = {*endpoint.errors, 401, 403}
    if path_parameters(endpoint.path):
        statuses.update((404, 422))  # 422: an id that is not even well-formed
    if endpoint.query is not None:
        statuses.add(422)
    if endpoint.body is not None:
        statuses.update((400, 413, 415, 422))
    if endpoint.request_media_type:
        statuses.update((400, 413, 415))
    return statuses
