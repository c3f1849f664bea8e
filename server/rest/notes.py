"""Notes over REST: metadata, snapshots and content, edits that merge with live editors,
versions and restore.

Reads come from the live room when one is open (so they include edits made a moment ago) and
from storage otherwise. Every edit goes through the note's room, borrowed for the duration:
connected editors receive it at once, and the response is sent once it is stored.
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime
from typing import Any, Literal

import pycrdt
from pydantic import BaseModel, Field
from starlette.responses import PlainTextResponse, Response

from crdt import document, text
from crdt.restore import restore
from persistence import limits, notes, tokens, update_log, versions
from persistence.ids import PATTERN as ID
from persistence.stores import workspaces

from .. import closecodes
from ..registry import NoteRefused, NoteUnavailable, RoomRegistry
from ..room import Room
from .api import Api, Call
from .crud import Body, Query, page_model
from .problems import Problem

log = logging.getLogger("coscribe.rest")

TAG = "notes"
OCTETS = "application/octet-stream"
BINARY = {"type": "string", "format": "binary"}
api_note = "/api/notes/{note_id}"


class Note(BaseModel):
    id: str
    workspace_id: str
    title: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class NoteListed(Note):
    size: int = Field(description="Stored bytes: newest snapshot plus the updates after it.")


class NoteCreate(Body):
    workspace_id: str = Field("default", pattern=ID)
    title: str = Field("", max_length=limits.TITLE_CHARS)
    text: str = Field("", description="Initial body (the root Y.Text `content`).")
    id: str | None = Field(None, pattern=ID)


class NoteUpdate(Body):
    title: str = Field(max_length=limits.TITLE_CHARS)


class NoteQuery(Query):
    workspace_id: str = Field("default", pattern=ID)
    deleted: bool = Field(False, description="List deleted notes instead.")


class SnapshotQuery(BaseModel):
    state_vector: str | None = Field(
        None, description="Base64 Yjs state vector: return only what it is missing."
    )


class TextReplace(Body):
    text: str


class TextInsert(Body):
    text: str
    position: int | None = Field(
        None, ge=0, description="Where to insert, in Unicode code points; absent: append."
    )


class TextResult(BaseModel):
    text: str
    edits: int = Field(description="Y operations it took (0: nothing changed).")


class UpdateResult(BaseModel):
    changed: bool = Field(description="False when the document already had everything.")
    state_vector: str = Field(description="Base64 state vector after the update.")


class Content(BaseModel):
    note_id: str
    content: dict[str, Any] = Field(description="Every root type: text, map, array, XML.")


class VersionCreate(Body):
    label: str | None = Field(None, max_length=limits.LABEL_CHARS)


class Version(BaseModel):
    id: int
    note_id: str
    through_seq: int
    kind: Literal["compaction", "manual", "auto", "restore"]
    label: str | None
    created_at: datetime
    size: int


class VersionList(BaseModel):
    items: list[Version]
    next_cursor: str | None = None


class VersionContent(Version):
    content: dict[str, Any]
    text: str


# The endpoints, declared at module level; register() adds them to the application's Api.
routes = Api()


def register(api: Api) -> None:
    api.include(routes)


def _rooms(call: Call) -> RoomRegistry:
    return call.services.rooms


async def _store_live(call: Call, note_id: str) -> None:
    """Store what the note's live room holds, if it has one, before reading storage."""
    if _rooms(call).live(note_id) is not None:
        await _rooms(call).stored(note_id)


async def _doc(call: Call, note_id: str) -> pycrdt.Doc:
    """The note as it is now: the live room's doc, or loaded from storage."""
    room = _rooms(call).live(note_id)
    if room is not None:
        return room.doc
    limits = call.services.settings.crdt_limits
    try:
        return await call.read(lambda conn: update_log.load_doc(conn, note_id, limits))
    except document.UpdateRefused as exc:
        # Stored before updates were checked; pycrdt never read it.
        raise Problem(409, update_log.refused_note_message(note_id, exc)) from None


async def _edit(call: Call, note_id: str, change: Any) -> Any:
    """Run change(room) on the note's live room and wait until it is stored (503 after
    storage_wait_s: the edit is kept and stored later)."""
    await call.read(lambda conn: notes.get_note(conn, note_id))  # 404 before anything else
    try:
        return await _rooms(call).edit(note_id, change)
    except NoteRefused as exc:
        raise Problem(409, str(exc)) from None
    except NoteUnavailable as exc:
        if exc.code == closecodes.NOTE_NOT_FOUND:
            raise Problem(404, str(exc)) from None
        raise Problem(503, str(exc)) from None


def _refused(call: Call, exc: document.UpdateRefused) -> Problem:
    """413 for an update past a size limit, 400 for any other refusal; nothing applied."""
    status = 413 if exc.too_big else 400
    client = call.request.client
    peer = f"{client.host}:{client.port}" if client else "unknown"
    log.warning(
        "%s: update to note %s refused (%s: %s)", peer, call.path.get("note_id"), exc.limit, exc
    )
    what = "update too big" if exc.too_big else "not a valid Yjs update"
    return Problem(status, f"{what} ({exc.limit}): {exc}", limit=exc.limit)


def _stored_version(note_id: str, state: bytes) -> pycrdt.Doc:
    """A version's doc; 409 if it holds content the update checks refuse."""
    try:
        return document.load(state, ())
    except document.UpdateRefused as exc:
        raise Problem(409, update_log.refused_note_message(note_id, exc)) from None


def _content(call: Call, doc: pycrdt.Doc, fields: dict[str, Any]) -> Any:
    """Content negotiation: with Accept text/plain or text/markdown, the body as that text;
    otherwise JSON, ``fields`` with every root rendered under "content"."""
    wanted = _text_media_type(call.request.headers.get("accept", ""))
    if wanted:
        return PlainTextResponse(document.body_text(doc), media_type=wanted)
    return {**fields, "content": document.render(doc)}


def _text_media_type(accept: str) -> str | None:
    for part in accept.split(","):
        media_type = part.split(";")[0].strip().lower()
        if media_type in ("text/plain", "text/markdown"):
            return media_type
        if media_type in ("application/json", "*/*"):
            return None
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _state_vector(raw: str | None) -> bytes:
    if raw is None:
        return document.EMPTY_STATE_VECTOR
    try:
        decoded = base64.b64decode(
            raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4), validate=True
        )
        document.decode_state_vector(decoded)
    except (binascii.Error, ValueError):
        raise Problem(400, "state_vector is not a base64-encoded Yjs state vector") from None
    return decoded


def _version_id(call: Call) -> int:
    raw = call.path["version_id"]
    if not (raw.isascii() and raw.isdigit()):
        raise Problem(404, f"version {raw!r} not found")
    return int(raw)


async def _version(call: Call, note_id: str, *, label: str | None, kind: str) -> Any:
    # A live room may hold edits not stored yet: store them first so the version has them.
    await _store_live(call, note_id)
    return await call.write(
        lambda conn: versions.create_version(conn, note_id, label=label, kind=kind)
    )


# --- notes ------------------------------------------------------------------------------


@routes.route(
    "GET", "/api/notes", tag=TAG, query=NoteQuery, response=page_model(NoteListed), errors=(404,)
)
async def list_notes(call: Call) -> Any:
    """List a workspace's notes, most recently changed first"""
    q = call.query

    def list_page(conn: Any) -> Any:
        if (
            q.workspace_id == workspaces.DEFAULT_ID
            and workspaces.find(conn, q.workspace_id) is None
        ):
            # The default workspace is made with its first note: until then it is empty.
            return {"items": [], "next_cursor": None}
        result = notes.list_notes(
            conn, q.workspace_id, deleted=q.deleted, limit=q.limit, cursor=q.cursor
        )
        return {"items": result.items, "next_cursor": result.next_cursor}

    return await call.read(list_page)


@routes.route(
    "POST", "/api/notes", tag=TAG, body=NoteCreate, response=Note, status=201, errors=(404, 409)
)
async def create_note(call: Call) -> Any:
    """Create a note, optionally with an initial body"""
    body: NoteCreate = call.body

    def create(conn: Any) -> dict:
        if body.workspace_id == "default":
            workspaces.ensure_default(conn)
        note = notes.create_note(
            conn, workspace_id=body.workspace_id, note_id=body.id, title=body.title
        )
        if body.text:
            doc = document.new_doc()
            doc.get(document.BODY, type=pycrdt.Text).insert(0, body.text)
            update_log.append_update(conn, note["id"], doc.get_update())
            note = notes.get_note(conn, note["id"])
        return note

    note = await call.write(create)
    if body.text:
        call.services.indexer.noted(note["id"])  # stored without a room: index it too
    call.services.events_written()
    return note


@routes.route("GET", api_note, tag=TAG, response=Note)
async def get_note(call: Call) -> Any:
    """Get a note's metadata"""
    return await call.read(lambda conn: notes.get_note(conn, call.path["note_id"]))


@routes.route("PATCH", api_note, tag=TAG, body=NoteUpdate, response=Note)
async def rename_note(call: Call) -> Any:
    """Rename a note"""
    title = call.body.title
    note = await call.write(lambda conn: notes.rename_note(conn, call.path["note_id"], title))
    call.services.events_written()
    return note


@routes.route("DELETE", api_note, tag=TAG, status=204)
async def delete_note(call: Call) -> None:
    """Delete a note (it can be undeleted); its live editors are disconnected with 4404"""
    note_id = call.path["note_id"]
    # What its editors typed up to now is kept, for an undelete.
    await _store_live(call, note_id)
    await call.write(lambda conn: notes.delete_note(conn, note_id))
    _rooms(call).close_note(note_id, closecodes.NOTE_NOT_FOUND)
    call.services.events_written()


@routes.route("POST", f"{api_note}/undelete", tag=TAG, response=Note, errors=(409,))
async def undelete_note(call: Call) -> Any:
    """Bring a deleted note back"""
    note = await call.write(lambda conn: notes.undelete_note(conn, call.path["note_id"]))
    call.services.events_written()
    return note


# --- reading ----------------------------------------------------------------------------


@routes.route(
    "GET",
    f"{api_note}/snapshot",
    tag=TAG,
    query=SnapshotQuery,
    response=BINARY,
    media_type=OCTETS,
    errors=(400, 409),
)
async def get_snapshot(call: Call) -> Response:
    """The note as one Yjs v1 update (only what a given state vector misses)"""
    vector = _state_vector(call.query.state_vector)
    doc = await _doc(call, call.path["note_id"])
    return Response(doc.get_update(vector), media_type=OCTETS)


@routes.route(
    "GET",
    f"{api_note}/state-vector",
    tag=TAG,
    response=BINARY,
    media_type=OCTETS,
    errors=(409,),
)
async def get_state_vector(call: Call) -> Response:
    """The note's Yjs state vector"""
    doc = await _doc(call, call.path["note_id"])
    return Response(doc.get_state(), media_type=OCTETS)


@routes.route(
    "GET",
    f"{api_note}/content",
    tag=TAG,
    response=Content,
    errors=(409,),
    description="JSON by default; with Accept: text/plain or text/markdown, the body.",
)
async def get_content(call: Call) -> Any:
    """The note's content: every root as JSON, or the body as text"""
    note_id = call.path["note_id"]
    return _content(call, await _doc(call, note_id), {"note_id": note_id})


# --- editing ----------------------------------------------------------------------------


@routes.route(
    "POST",
    f"{api_note}/updates",
    tag=TAG,
    request_media_type=OCTETS,
    response=UpdateResult,
    errors=(409,),
)
async def apply_update(call: Call) -> Any:
    """Apply a binary Yjs v1 update"""
    update = call.raw
    try:
        document.validate_update(update, call.services.settings.crdt_limits)
    except document.UpdateRefused as exc:
        raise _refused(call, exc) from None
    except document.InvalidUpdate as exc:
        raise Problem(400, f"not a valid Yjs update: {exc}") from None

    def change(room: Room) -> dict:
        before = room.doc.get_state()
        try:
            room.apply(update)
        except document.UpdateRefused as exc:
            raise _refused(call, exc) from None
        except document.InvalidUpdate as exc:
            raise Problem(400, f"the update does not apply: {exc}") from None
        after = room.doc.get_state()
        return {"changed": after != before, "state_vector": _b64(after)}

    return await _edit(call, call.path["note_id"], change)


@routes.route(
    "PUT", f"{api_note}/text", tag=TAG, body=TextReplace, response=TextResult, errors=(409,)
)
async def replace_text(call: Call) -> Any:
    """Replace the body by its minimal diff (concurrent edits elsewhere merge)"""
    new = call.body.text

    def change(room: Room) -> dict:
        edits = 0

        def edit(doc: pycrdt.Doc) -> None:
            nonlocal edits
            edits = text.replace(doc.get(document.BODY, type=pycrdt.Text), new)

        room.edit(edit, len(new.encode()))
        return {"text": document.body_text(room.doc), "edits": edits}

    return await _edit(call, call.path["note_id"], change)


@routes.route(
    "POST", f"{api_note}/text", tag=TAG, body=TextInsert, response=TextResult, errors=(409,)
)
async def insert_text(call: Call) -> Any:
    """Insert text into the body at a position (code points), or append"""
    body: TextInsert = call.body

    def change(room: Room) -> dict:
        room.edit(
            lambda doc: text.insert(
                doc.get(document.BODY, type=pycrdt.Text), body.position, body.text
            ),
            len(body.text.encode()),
        )
        return {"text": document.body_text(room.doc), "edits": 1 if body.text else 0}

    return await _edit(call, call.path["note_id"], change)


# --- versions ---------------------------------------------------------------------------


@routes.route(
    "POST", f"{api_note}/versions", tag=TAG, body=VersionCreate, response=Version, status=201
)
async def create_version(call: Call) -> Any:
    """Take a version (a snapshot with an optional label)"""
    note_id, label = call.path["note_id"], call.body.label
    return await _version(call, note_id, label=label, kind="manual")


@routes.route("GET", f"{api_note}/versions", tag=TAG, query=Query, response=VersionList)
async def list_versions(call: Call) -> Any:
    """List a note's versions, newest first, a page at a time"""
    q = call.query
    page = await call.read(
        lambda conn: versions.page_versions(
            conn, call.path["note_id"], limit=q.limit, cursor=q.cursor
        )
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@routes.route(
    "GET",
    f"{api_note}/versions/{{version_id}}",
    tag=TAG,
    response=VersionContent,
    errors=(409,),
    description="JSON by default; with Accept: text/plain or text/markdown, the body.",
)
async def get_version(call: Call) -> Any:
    """A version's content"""
    note_id, version_id = call.path["note_id"], _version_id(call)
    version = await call.read(lambda conn: versions.get_version(conn, note_id, version_id))
    doc = _stored_version(note_id, version.pop("state"))
    version.pop("state_vector")
    return _content(call, doc, {**version, "text": document.body_text(doc)})


@routes.route(
    "POST",
    f"{api_note}/versions/{{version_id}}/restore",
    tag=TAG,
    response=Version,
    status=201,
    errors=(409,),
    description="The old content comes back as new edits: the body as one replacement of the "
    "whole text, never letters of two texts mixed. The content from just before is kept as a "
    "version first; the history after the version is kept, and the new version this returns "
    "can itself be restored.",
)
async def restore_version(call: Call) -> Any:
    """Restore a version as a new forward change"""
    note_id, version_id = call.path["note_id"], _version_id(call)
    version = await call.read(lambda conn: versions.get_version(conn, note_id, version_id))
    old = _stored_version(note_id, version["state"])
    # Who restored: the token's name, when it has one.
    name = await call.read(lambda conn: tokens.name_of(conn, call.principal.token_id))
    by = f" by {name}"[: limits.LABEL_CHARS - 40] if name else ""
    await _version(
        call, note_id, label=f"before restoring version {version_id}{by}", kind="restore"
    )

    def change(room: Room) -> None:
        room.edit(lambda doc: restore(doc, old), len(version["state"]))

    await _edit(call, note_id, change)
    return await _version(call, note_id, label=f"restored version {version_id}{by}", kind="restore")
