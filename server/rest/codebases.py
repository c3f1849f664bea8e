"""Codebases: /api/codebases."""

from __future__ import annotations

from pydantic import Field

from persistence import limits
from persistence.stores import codebases

from .api import Api
from .crud import Body, Id, Query, Resource, Stored, unchanged


class Codebase(Stored):
    workspace_id: str
    name: str
    repo_url: str | None
    default_branch: str
    path: str | None
    description: str
    language: str | None


class CodebaseCreate(Body):
    workspace_id: Id
    name: str = Field(
        min_length=1, max_length=limits.NAME_CHARS, description="Unique in the workspace."
    )
    repo_url: str | None = Field(None, max_length=limits.PATH_CHARS)
    default_branch: str = Field("main", min_length=1, max_length=limits.NAME_CHARS)
    path: str | None = Field(
        None, max_length=limits.PATH_CHARS, description="Where it is checked out."
    )
    description: str = Field("", max_length=limits.TEXT_CHARS)
    language: str | None = Field(None, max_length=limits.KIND_CHARS)
    id: Id | None = None


class CodebaseUpdate(Body):
    name: str = unchanged(min_length=1, max_length=limits.NAME_CHARS)
    repo_url: str | None = Field(None, max_length=limits.PATH_CHARS)
    default_branch: str = unchanged(min_length=1, max_length=limits.NAME_CHARS)
    path: str | None = Field(None, max_length=limits.PATH_CHARS)
    description: str = unchanged(max_length=limits.TEXT_CHARS)
    language: str | None = Field(None, max_length=limits.KIND_CHARS)


class CodebaseQuery(Query):
    workspace_id: Id
    language: str | None = Field(None, max_length=limits.KIND_CHARS)


def register(api: Api) -> None:
    Resource.over(
        codebases,
        list=codebases.list_codebases,
        name="codebase",
        plural="codebases",
        out=Codebase,
        create_body=CodebaseCreate,
        update_body=CodebaseUpdate,
        query=CodebaseQuery,
        list_errors=(404,),
    ).register(api)
