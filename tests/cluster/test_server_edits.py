"""Edits made by the server reach editors on every instance: REST text edits, binary updates
and restores on one instance show up in Node editors connected to the others. Deleting a note
closes its sockets on every instance with 4404; revoking a token closes its sockets on every
instance with 4401, and only its own."""

from __future__ import annotations

import asyncio
import uuid

import pycrdt
import pytest

from server import closecodes
from tests.cluster.harness import api, create_note, eventually, stored_text, ws_url
from tests.live_server import run_cli
from tests.node_peer import NodePeerError

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

CROSS_S = 5


async def test_rest_edits_on_one_instance_reach_editors_on_the_others(make_cluster, spawn):
    cluster = make_cluster()
    a, b, c = await cluster.start(3)
    note = f"rest-{uuid.uuid4().hex[:8]}"
    await create_note(a, note, text="hello")
    on_b, on_c = await spawn(2)
    await on_b.connect(ws_url(b), note, 401)
    await on_c.connect(ws_url(c), note, 402)
    assert await on_c.text() == "hello"

    async def everywhere(text: str) -> None:
        for peer in (on_b, on_c):
            try:
                await peer.call("waitText", text=text, timeout=CROSS_S)
            except NodePeerError as exc:
                raise AssertionError(f"{exc}\n{cluster.tails()}") from None

    # PUT text (a minimal diff) on A.
    response = await api(a, "PUT", f"/api/notes/{note}/text", json={"text": "hello, world"})
    assert response.status_code == 200, response.text
    await everywhere("hello, world")

    # An editor on C types; then an insert over REST on B lands after it.
    await on_c.call("insertText", index=12, text="!")
    await everywhere("hello, world!")
    response = await api(b, "POST", f"/api/notes/{note}/text", json={"text": " (rest on b)"})
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "hello, world! (rest on b)"
    await everywhere("hello, world! (rest on b)")

    # A binary Yjs update made against the state A serves, posted to A.
    snapshot = await api(a, "GET", f"/api/notes/{note}/snapshot")
    doc = pycrdt.Doc(client_id=4242)
    doc.apply_update(snapshot.content)
    before = doc.get_state()
    doc.get("content", type=pycrdt.Text).insert(0, ">> ")
    response = await api(
        a,
        "POST",
        f"/api/notes/{note}/updates",
        content=doc.get_update(before),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200 and response.json()["changed"], response.text
    await everywhere(">> hello, world! (rest on b)")

    # A version taken on A, the body replaced on B, the version restored on C.
    version = await api(a, "POST", f"/api/notes/{note}/versions", json={"label": "before"})
    assert version.status_code == 201, version.text
    replaced = await api(b, "PUT", f"/api/notes/{note}/text", json={"text": "replaced"})
    assert replaced.status_code == 200, replaced.text
    await everywhere("replaced")
    restored = await api(c, "POST", f"/api/notes/{note}/versions/{version.json()['id']}/restore")
    assert restored.status_code == 201, restored.text
    await everywhere(">> hello, world! (rest on b)")
    for server in (a, b, c):
        assert await stored_text(server, note) == ">> hello, world! (rest on b)"


async def closed_with(peer, code: int, cluster) -> None:
    try:
        await peer.wait_event(
            "connection-close", lambda event: event.get("code") == code, timeout=10
        )
    except NodePeerError as exc:
        raise AssertionError(
            f"{peer.name} not closed with {code}: {exc}\n{cluster.tails()}"
        ) from None


async def test_deleting_a_note_closes_its_sockets_on_every_instance(make_cluster, spawn):
    cluster = make_cluster()
    a, b, c = await cluster.start(3)
    note, other = f"del-{uuid.uuid4().hex[:8]}", f"keep-{uuid.uuid4().hex[:8]}"
    await create_note(a, note, text="doomed")
    await create_note(a, other, text="kept")
    on_a, on_b, on_c, other_on_c = await spawn(4)
    await on_a.connect(ws_url(a), note, 501)
    await on_b.connect(ws_url(b), note, 502)
    await on_c.connect(ws_url(c), note, 503)
    await other_on_c.connect(ws_url(c), other, 504)

    response = await api(a, "DELETE", f"/api/notes/{note}")
    assert response.status_code == 204, response.text
    await asyncio.gather(
        *(closed_with(p, closecodes.NOTE_NOT_FOUND, cluster) for p in (on_a, on_b, on_c))
    )
    # The other note's editor stays.
    assert (await other_on_c.call("status"))["connected"]
    await other_on_c.call("insertText", index=4, text="!")

    async def kept_everywhere() -> bool:
        texts = [await stored_text(server, other) for server in (a, b, c)]
        return texts == ["kept!"] * 3

    await eventually(kept_everywhere, "the other note's edit is not served everywhere", CROSS_S)
    for server in (a, b, c):
        missing = await api(server, "GET", f"/api/notes/{note}/content")
        assert missing.status_code == 404, f":{server.port} serves the deleted note"


async def test_revoking_a_token_closes_its_sockets_on_every_instance(make_cluster, spawn, tmp_path):
    cluster = make_cluster(COSCRIBE_AUTH="true", COSCRIBE_AUTH_RECHECK_S="1")
    cluster.migrate()

    def token(*args: str) -> str:
        result = run_cli(["token", "create", *args], cluster.env, tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    admin = token("--role", "admin")  # before any instance starts: no first-start token
    # The default workspace is made with its first note: the editors' tokens come after.
    a, b, c = await cluster.start(3)
    note = f"tok-{uuid.uuid4().hex[:8]}"
    await create_note(a, note, token=admin, text="secret")
    doomed, kept = await asyncio.gather(
        asyncio.to_thread(token, "--role", "editor", "--workspace", "default"),
        asyncio.to_thread(token, "--role", "editor", "--workspace", "default"),
    )

    doomed_a, doomed_c, kept_b, kept_c = await spawn(4)
    await doomed_a.connect(ws_url(a), note, 601, params={"token": doomed})
    await doomed_c.connect(ws_url(c), note, 602, params={"token": doomed})
    await kept_b.connect(ws_url(b), note, 603, params={"token": kept})
    await kept_c.connect(ws_url(c), note, 604, params={"token": kept})
    assert await doomed_c.text() == "secret"

    token_id = doomed.split("_")[1]
    revoked = run_cli(["token", "revoke", token_id], cluster.env, tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    await asyncio.gather(
        *(closed_with(p, closecodes.UNAUTHORIZED, cluster) for p in (doomed_a, doomed_c))
    )
    # The other token's sockets stay open and keep editing across instances.
    await kept_b.call("insertText", index=6, text=" kept")
    await kept_c.call("waitText", text="secret kept", timeout=CROSS_S)
    for peer in (kept_b, kept_c):
        status = await peer.call("status")
        assert status["connected"] and status["lastClose"] is None, f"{peer.name}: {status}"
