"""Access control and limits on a real server: tokens on the websocket, first start, viewers,
revocation, origins, and every per-connection limit.

Tokens are made and revoked with the real `coscribe token` command against the server's own
database, as an operator would.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time

import httpx
import pytest
import websockets

from crdt import protocol
from server import closecodes
from tests.live_server import LiveServer, run_cli
from tests.yclient import YClient, eventually

URL_LINE = re.compile(r"http://127\.0\.0\.1:(\d+)/#token=(cs_[0-9a-f]{16}_[A-Za-z0-9_-]{43})")


class Secured:
    """A live server with auth on, its database, and helpers to act as an operator."""

    def __init__(self, tmp_path, **settings: str) -> None:
        self.tmp_path = tmp_path
        self.env = {
            "COSCRIBE_SQLITE_PATH": str(tmp_path / "secure.sqlite"),
            "COSCRIBE_AUTH": "true",
            "COSCRIBE_AUTH_RECHECK_S": "1",
            **settings,
        }
        self.server = LiveServer(self.env, tmp_path)
        self.issued: list[str] = []  # secrets of the tokens made with token()

    def cli(self, *args: str) -> str:
        result = run_cli(list(args), self.env, self.tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def token(self, role: str, workspace: str | None = None) -> str:
        args = ["token", "create", "--role", role]
        token = self.cli(*args, *(["--workspace", workspace] if workspace else []))
        self.issued.append(token.split("_", 2)[2])
        return token

    def api(self, method: str, path: str, token: str, **kwargs) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {token}"}
        return httpx.request(method, f"{self.server.url}{path}", headers=headers, **kwargs)


@pytest.fixture
def secured(tmp_path):
    secured = Secured(tmp_path)
    secured.server.start()
    match = URL_LINE.search(secured.server.log())
    assert match, secured.server.log()
    secured.admin = match.group(2)
    for slug in ("alpha", "beta"):
        response = secured.api("POST", "/api/workspaces", secured.admin, json={"slug": slug})
        assert response.status_code == 201, response.text
    yield secured
    secured.server.stop()
    # No token's secret is ever logged (the first-start URL is the one place it is shown).
    log = secured.server.log()
    for secret in secured.issued:
        assert secret not in log, "a token secret reached the log"


async def client(secured: Secured, note: str, token: str | None, **kwargs) -> YClient:
    query = f"?token={token}" if token else ""
    return await YClient(secured.server.url, f"{note}{query}").connect(**kwargs)


async def synced(secured: Secured, note: str, token: str | None) -> YClient:
    c = await client(secured, note, token)
    await asyncio.wait_for(c.synced.wait(), 10)
    return c


async def refused_with(c: YClient) -> int | None:
    code = await c.wait_closed()
    assert not c.synced.is_set(), "a refused socket must never be synced"
    return code


def test_first_start_prints_a_url_once_and_its_token_works(tmp_path):
    secured = Secured(tmp_path)
    with secured.server as server:
        match = URL_LINE.search(server.log())
        assert match and int(match.group(1)) == server.port, server.log()
        token = match.group(2)
        assert secured.api("GET", "/api/notes", token).status_code == 200
        assert httpx.get(f"{server.url}/api/notes").status_code == 401
        page = httpx.get(f"{server.url}/")
        assert page.status_code == 200  # the editor itself is public; its data is not
    listed = secured.cli("token", "list")
    assert "created on first start" in listed and token not in listed
    with secured.server as server:
        assert server.log().count("#token=") == 1  # no second token on the next start
        assert secured.api("GET", "/api/notes", token).status_code == 200
    # The secret is in no log line but the one URL shown to the operator.
    assert secured.server.log().count(token.split("_", 2)[2]) == 1


async def test_sockets_without_a_valid_token_are_refused_with_4401(secured):
    for token in (None, "nonsense", "cs_0123456789abcdef_" + "A" * 43):
        c = await client(secured, "guarded", token)
        assert await refused_with(c) == closecodes.UNAUTHORIZED
        assert any(isinstance(m, protocol.AuthDenied) for m in c.received)
    listed = secured.api("GET", "/api/notes", secured.admin).json()["items"]
    assert listed == []  # refused sockets create nothing


async def test_a_token_of_another_workspace_gets_4403_existing_note_or_not(secured):
    alpha_editor = secured.token("editor", "alpha")
    owner = await synced(secured, "alpha-note", alpha_editor)
    owner.text.insert(0, "alpha only")
    alpha = secured.api("GET", "/api/notes/alpha-note", secured.admin).json()["workspace_id"]
    beta_editor = secured.token("editor", "beta")
    c = await client(secured, "alpha-note", beta_editor)
    assert await refused_with(c) == closecodes.FORBIDDEN
    assert "alpha only" not in str(c.text)
    # A viewer may not create: for it, a note of another workspace and a free id look alike.
    beta_viewer = secured.token("viewer", "beta")
    codes = []
    for note_id in ("alpha-note", "still-free"):
        c = await client(secured, note_id, beta_viewer)
        codes.append(await refused_with(c))
    assert codes == [closecodes.FORBIDDEN, closecodes.FORBIDDEN]
    assert secured.api("GET", "/api/notes/still-free", secured.admin).status_code == 404
    # An editor opening a free id creates the note, in its own workspace.
    mine = await synced(secured, "beta-new", beta_editor)
    created = secured.api("GET", "/api/notes/beta-new", secured.admin).json()
    assert created["workspace_id"] not in (alpha, "default")
    for c in (owner, mine):
        await c.close()


async def test_a_viewer_sees_the_note_and_presence_but_changes_nothing(secured):
    editor = await synced(secured, "shared", secured.token("editor", "alpha"))
    editor.text.insert(0, "written by the editor")
    viewer_token = secured.token("viewer", "alpha")
    viewer = await synced(secured, "shared", viewer_token)
    await eventually(lambda: str(viewer.text) == "written by the editor", what="viewer reads")
    await viewer.set_awareness({"user": {"name": "Vic"}})
    await eventually(lambda: viewer.doc.client_id in editor.awareness, what="viewer presence")
    viewer.text.insert(0, "VANDALISM ")  # sent to the server, which must drop it
    editor.text.insert(len(str(editor.text)), " and more")
    await eventually(lambda: str(editor.text).endswith(" and more"), what="editor echo")
    late = await synced(secured, "shared", secured.token("viewer", "alpha"))
    assert str(late.text) == "written by the editor and more"
    assert "VANDALISM" not in str(editor.text)
    body = secured.api(
        "GET", "/api/notes/shared/content", viewer_token, headers={"Accept": "text/plain"}
    )
    assert body.text == "written by the editor and more"
    assert (
        secured.api("PUT", "/api/notes/shared/text", viewer_token, json={"text": "x"}).status_code
        == 403
    )
    for c in (editor, viewer, late):
        await c.close()
    secured.server.stop()
    secured.server.start()
    stored = secured.api(
        "GET", "/api/notes/shared/content", secured.admin, headers={"Accept": "text/plain"}
    )
    assert stored.text == "written by the editor and more"


async def test_revoking_a_token_closes_its_sockets_within_seconds(secured):
    doomed = secured.token("editor", "alpha")
    other = secured.token("editor", "alpha")
    a = await synced(secured, "live", doomed)
    b = await synced(secured, "live", other)
    token_id = doomed.split("_")[1]
    assert token_id in secured.cli("token", "revoke", token_id)
    revoked = time.monotonic()  # the revocation is committed once the command has returned
    assert await a.wait_closed(timeout=10) == closecodes.UNAUTHORIZED
    assert time.monotonic() - revoked < 4  # the recheck runs every second here
    b.text.insert(0, "the other one stays")
    await asyncio.sleep(1.5)  # another round of checks
    assert b.close_code is None and b.ws.state.name == "OPEN"
    again = await client(secured, "live", doomed)
    assert await refused_with(again) == closecodes.UNAUTHORIZED
    await b.close()


async def test_deleting_a_workspace_closes_its_sockets(secured):
    beta_editor = secured.token("editor", "beta")
    c = await synced(secured, "beta-note", beta_editor)
    beta = secured.api("GET", "/api/notes/beta-note", secured.admin).json()["workspace_id"]
    assert secured.api("DELETE", f"/api/workspaces/{beta}", secured.admin).status_code == 204
    assert await c.wait_closed(timeout=10) == closecodes.UNAUTHORIZED


async def test_the_token_may_come_as_a_subprotocol(secured):
    token = secured.token("editor", "alpha")
    url = f"{secured.server.url.replace('http', 'ws', 1)}/ws/proto"
    async with websockets.connect(url, subprotocols=["coscribe", f"bearer.{token}"]) as ws:
        assert ws.subprotocol == "coscribe"
        await ws.send(protocol.sync_step1(b"\x00"))
        assert isinstance(protocol.decode(await ws.recv()), protocol.SyncStep1)
    async with websockets.connect(url, subprotocols=[f"bearer.{token}"]) as ws:
        assert ws.subprotocol == f"bearer.{token}"  # the only one offered


async def test_websockets_from_another_origin_are_refused(tmp_path):
    secured = Secured(tmp_path, COSCRIBE_ALLOWED_ORIGINS="http://editor.example")
    with secured.server as server:
        admin = URL_LINE.search(server.log()).group(2)
        own = server.url
        for origin, expected in (
            ("http://evil.example", closecodes.POLICY),
            ("null", closecodes.POLICY),
            (own, None),
            ("http://editor.example", None),
        ):
            c = await client(secured, "o", admin, additional_headers={"Origin": origin})
            if expected is None:
                await asyncio.wait_for(c.synced.wait(), 10)
                await c.close()
            else:
                assert await refused_with(c) == expected, origin


def test_auth_off_is_refused_off_loopback_and_loud_on_it(tmp_path):
    env = {"COSCRIBE_SQLITE_PATH": str(tmp_path / "x.sqlite"), "COSCRIBE_AUTH": "false"}
    result = run_cli(["serve", "--host", "0.0.0.0"], env, tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "COSCRIBE_AUTH" in lines[0] and "loopback" in lines[0]
    with LiveServer(env, tmp_path) as server:
        assert "auth is OFF" in server.log()
        assert httpx.get(f"{server.url}/api/notes").status_code == 200


# --- limits ---------------------------------------------------------------------------------


def limited(tmp_path, **settings: str) -> LiveServer:
    return LiveServer({"COSCRIBE_SQLITE_PATH": str(tmp_path / "l.sqlite"), **settings}, tmp_path)


async def connected(server: LiveServer, note: str) -> YClient:
    c = await YClient(server.url, note).connect()
    await asyncio.wait_for(c.synced.wait(), 10)
    return c


def sockets(server: LiveServer) -> int:
    return httpx.get(f"{server.url}/health").json()["sockets"]


async def test_connections_per_address_and_per_note(tmp_path):
    settings = {
        "COSCRIBE_MAX_CONNECTIONS_PER_ADDRESS": "4",
        "COSCRIBE_MAX_CONNECTIONS_PER_NOTE": "2",
    }
    with limited(tmp_path, **settings) as server:
        a, b = await connected(server, "n1"), await connected(server, "n1")
        third = await YClient(server.url, "n1").connect()
        assert await third.wait_closed() == closecodes.TRY_AGAIN_LATER  # the note is full
        # A refused socket holds its slot until its handler returns, a moment after the close.
        await eventually(lambda: sockets(server) == 2, what="refused socket released")
        c, d = await connected(server, "n2"), await connected(server, "n2")
        fifth = await YClient(server.url, "n3").connect()
        assert await fifth.wait_closed() == closecodes.TRY_AGAIN_LATER  # the address is
        a.text.insert(0, "unaffected")
        await eventually(lambda: str(b.text) == "unaffected", what="room carries on")
        await d.close()
        await eventually(lambda: sockets(server) == 3, what="slots released")
        e = await connected(server, "n3")  # a freed slot is usable again
        for x in (a, b, c, e):
            await x.close()


async def test_a_client_over_its_message_rate_is_closed_and_the_rest_dropped(tmp_path):
    settings = {"COSCRIBE_MAX_UPDATES_PER_S": "5", "COSCRIBE_UPDATE_BURST": "10"}
    with limited(tmp_path, **settings) as server:
        flooder = await connected(server, "rate")
        witness = await connected(server, "rate")
        source = YClient(server.url, "unused")  # a doc to make real updates with, offline
        frames = []
        for i in range(60):
            before = source.doc.get_state()
            source.text.insert(len(str(source.text)), f"{i:02d} ")
            frames.append(protocol.sync_update(source.doc.get_update(before)))
        for frame in frames:
            try:
                await flooder.send(frame)
            except websockets.ConnectionClosed:
                break
        assert await flooder.wait_closed() == closecodes.POLICY
        # Frames are handled in order and the close came at the first one over the limit:
        # a client joining now gets exactly what was accepted before it.
        fresh = await connected(server, "rate")
        kept = str(fresh.text)
        accepted = len(kept) // 3
        assert 5 <= accepted < 20 and kept == "".join(f"{i:02d} " for i in range(accepted))
        await eventually(lambda: str(witness.text) == kept, what="the witness saw the same")
        witness.text.insert(0, ">")
        await eventually(lambda: str(fresh.text) == ">" + kept, what="room carries on")
        await witness.close()
        await fresh.close()


async def test_a_note_cannot_grow_past_its_limit(tmp_path):
    with limited(tmp_path, COSCRIBE_MAX_NOTE_BYTES="20000") as server:
        writer = await connected(server, "big")
        writer.text.insert(0, "small ")
        await eventually(lambda: "small" in httpx.get(f"{server.url}/api/notes/big/content").text)
        writer.text.insert(6, "x" * 30_000)
        assert await writer.wait_closed() == closecodes.TOO_BIG
        put = httpx.put(f"{server.url}/api/notes/big/text", json={"text": "y" * 30_000})
        assert put.status_code == 413 and "limit" in put.json()["detail"]
        reader = await connected(server, "big")
        assert str(reader.text) == "small "
        reader.text.insert(6, "still editable")
        await eventually(
            lambda: (
                httpx.get(f"{server.url}/api/notes/big/content").json()["content"]
                == {"content": "small still editable"}
            )
        )
        await reader.close()


def _raw(port: int, data: bytes, wait: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait + 5) as sock:
        if data:
            sock.sendall(data)
        chunks = []
        deadline = time.monotonic() + wait + 5
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)  # the server closed the connection
            chunks.append(chunk)
    raise AssertionError("the server kept the connection open")


def test_slow_and_oversized_request_heads_are_cut_off(tmp_path):
    settings = {"COSCRIBE_HANDSHAKE_TIMEOUT_S": "1", "COSCRIBE_MAX_HANDSHAKE_BYTES": "4096"}
    with limited(tmp_path, **settings) as server:
        started = time.monotonic()
        assert _raw(server.port, b"", wait=1).startswith(b"HTTP/1.1 408")  # says nothing
        partial = b"GET /ws/slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        assert _raw(server.port, partial, wait=1).startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 6
        huge = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 8000 + b"\r\n\r\n"
        assert _raw(server.port, huge, wait=1).startswith(b"HTTP/1.1 431")
        assert httpx.get(f"{server.url}/health").status_code == 200
        big_body = httpx.post(f"{server.url}/api/notes", json={"id": "fine", "text": "z" * 50_000})
        assert big_body.status_code == 201  # the limit is on heads, not bodies
