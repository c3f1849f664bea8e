"""Who may call what: every REST call is authenticated, checked against its role, and kept
inside the workspace its token reaches.

A token that does not reach a row gets 403 whether or not the row exists, with one message for
both, so no answer tells a stranger which ids are taken.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from persistence import schema
from persistence.stores import workspaces
from persistence.stores.entity import MISSING, workspace_of

from ..auth import Authenticator, Principal, Refused, bearer
from .problems import Problem

if TYPE_CHECKING:
    from .api import Call

# Path parameters naming a row, and the table that row is in.
OWNERS: dict[str, tuple[sa.Table, str]] = {
    "workspace_id": (schema.workspaces, "workspace"),
    "note_id": (schema.notes, "note"),
    "agent_id": (schema.agents, "agent"),
    "codebase_id": (schema.codebases, "codebase"),
    "conversation_id": (schema.conversations, "conversation"),
    "task_id": (schema.tasks, "task"),
    "depends_on_id": (schema.tasks, "task"),
    "background_task_id": (schema.background_tasks, "background task"),
    "schedule_id": (schema.schedules, "schedule"),
    "token_id": (schema.tokens, "token"),
    "webhook_id": (schema.webhooks, "webhook"),
}
# Fields of bodies and queries naming a row: an editor or viewer may only name its own.
REFERENCES: dict[str, tuple[sa.Table, str]] = {
    **{name: owner for name, owner in OWNERS.items() if name != "workspace_id"},
    "assignee_id": (schema.agents, "agent"),
}
READ_METHODS = ("GET", "HEAD")


def required_access(call: Call) -> str:
    """ "read", "write" or "admin": what the endpoint needs."""
    endpoint = call.endpoint
    if endpoint.access:
        return endpoint.access
    return "read" if endpoint.method in READ_METHODS else "write"


async def authorize(call: Call) -> None:
    """Before the body is read: who is calling, may their role call this, and does every row
    the path names lie in their workspace?"""
    auth: Authenticator = call.services.auth
    request = call.request
    client = request.client
    peer = f"{client.host}:{client.port}" if client else "unknown"
    try:
        principal = await auth.principal(bearer(request.headers), peer)
    except Refused as exc:
        raise Problem(
            401,
            f"{exc}: send `Authorization: Bearer TOKEN` (see `coscribe token create`)",
            headers={"WWW-Authenticate": 'Bearer realm="coscribe"'},
        ) from None
    call.principal = principal
    if isinstance(call.path.get("workspace_id"), str):
        await resolve_workspace(call, call.path)
    needed = required_access(call)
    if needed == "admin" and not principal.is_admin:
        raise Problem(403, "this needs an admin token")
    if needed == "write" and not principal.can_write:
        raise Problem(403, "a viewer token can read but not change anything")
    if not principal.is_admin:
        named = [(OWNERS[name], value) for name, value in call.path.items() if name in OWNERS]
        await _require_reach(call, named)


async def resolve_workspace(call: Call, data: Any) -> None:
    """A workspace named by its slug (`?workspace_id=team`) becomes its id, wherever an id is
    accepted, as on the command line. Called once the caller is known; a name that is
    neither stays as it is and gets the answer an unknown id gets."""
    named = data.get("workspace_id") if isinstance(data, dict) else None
    if not isinstance(named, str) or not named or len(named) > 128:
        return
    found = await call.read(lambda conn: workspaces.find_id(conn, named))
    if found is not None:
        data["workspace_id"] = found


def scope_workspace(call: Call, data: Any, where: str) -> None:
    """Before validation, on the raw query or body: a workspace it names must be the caller's
    (else 403, whatever else is wrong: a 422 would answer a stranger's questions). One it
    leaves out becomes the caller's: an editor or viewer lists only its own workspace, and
    what a token with a workspace creates goes there (for an admin, its home)."""
    model = call.endpoint.query if where == "query" else call.endpoint.body
    if not isinstance(data, dict) or model is None or "workspace_id" not in model.model_fields:
        return
    principal: Principal = call.principal
    named = data.get("workspace_id")
    if isinstance(named, str):
        if not principal.reaches(named):
            raise Problem(403, "this token does not give access to this workspace")
        return
    home = principal.workspace_id
    if named is None and home is not None and (where == "body" or not principal.is_admin):
        data["workspace_id"] = home


async def check_references(call: Call) -> None:
    """After validation: rows a body or query names (an assignee, a dependency, ...) must lie
    in the caller's workspace, else 403 — the same answer whether or not they exist."""
    if call.principal.is_admin:
        return
    named = []
    for model in (call.query, call.body):
        if model is None:
            continue
        for name in model.model_fields_set & REFERENCES.keys():
            value = getattr(model, name)
            if isinstance(value, str):
                named.append((REFERENCES[name], value))
    await _require_reach(call, named)


async def _require_reach(call: Call, named: list[tuple[tuple[sa.Table, str], str]]) -> None:
    """Each ((table, what), id) must be a row in a workspace the caller reaches; else 403,
    with one message whether the row is elsewhere or nowhere."""
    if not named:
        return

    def owners(conn: sa.Connection) -> list[tuple[str, Any]]:
        return [(what, workspace_of(conn, table, row_id)) for (table, what), row_id in named]

    principal: Principal = call.principal
    for what, workspace in await call.read(owners):
        if workspace is MISSING or not principal.reaches(workspace):
            raise Problem(403, f"this token does not give access to this {what}")
