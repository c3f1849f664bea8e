"""Codebases: the repositories a workspace's tasks are about."""

from __future__ import annotations

import sqlalchemy as sa

from .. import limits, schema
from ..checks import reference, text
from ..paging import DEFAULT_LIMIT, Page, Row
from .entity import WORKSPACE, Entity

_codebases = Entity(
    schema.codebases,
    "codebase",
    {
        "workspace_id": reference(nullable=False),
        "name": text(limits.NAME_CHARS, blank=False),
        "repo_url": text(limits.PATH_CHARS, nullable=True),
        "default_branch": text(limits.NAME_CHARS, blank=False),
        "path": text(limits.PATH_CHARS, nullable=True),
        "description": text(),
        "language": text(limits.KIND_CHARS, nullable=True),
    },
    refs={"workspace_id": WORKSPACE},
    unique=[("workspace_id", "name")],
)

get = _codebases.get
update = _codebases.update
delete = _codebases.delete


def create(
    conn: sa.Connection,
    workspace_id: str,
    name: str,
    *,
    repo_url: str | None = None,
    default_branch: str = "main",
    path: str | None = None,
    description: str = "",
    language: str | None = None,
    id: str | None = None,
) -> Row:
    """Create a codebase; its name is unique in the workspace."""
    values = {
        "workspace_id": workspace_id,
        "name": name,
        "repo_url": repo_url,
        "default_branch": default_branch,
        "path": path,
        "description": description,
        "language": language,
    }
    return _codebases.create(conn, values, entity_id=id)


def list_codebases(
    conn: sa.Connection,
    workspace_id: str,
    *,
    language: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page:
    """The workspace's codebases, newest first, optionally by language."""
    return _codebases.page(
        conn, workspace_id=workspace_id, language=language, limit=limit, cursor=cursor
    )
