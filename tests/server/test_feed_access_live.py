"""The change feed and search with auth on, on a real server: a token sees only its own
workspace's events and notes, and a stream whose token is revoked ends."""

from __future__ import annotations

import httpx
import pytest

from tests.server.test_access_live import URL_LINE, Secured
from tests.sse import open_stream


@pytest.fixture
def secured(tmp_path):
    secured = Secured(tmp_path, COSCRIBE_FEED_KEEPALIVE_S="1", COSCRIBE_FEED_POLL_MS="100")
    secured.server.start()
    secured.admin = URL_LINE.search(secured.server.log()).group(2)
    for slug in ("alpha", "beta"):
        response = secured.api(
            "POST", "/api/workspaces", secured.admin, json={"id": slug, "slug": slug}
        )
        assert response.status_code == 201, response.text
    yield secured
    secured.server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_follows_only_its_workspace_until_revoked(secured):
    viewer = secured.token("viewer", "alpha")
    editor = secured.token("editor", "beta")
    url = secured.server.url
    async with (
        httpx.AsyncClient(base_url=url, headers=bearer(viewer), timeout=10) as alpha_viewer,
        httpx.AsyncClient(base_url=url, headers=bearer(secured.admin), timeout=10) as admin,
        open_stream(alpha_viewer) as feed,
    ):
        for space in ("beta", "alpha"):
            created = await admin.post("/api/notes", json={"workspace_id": space, "id": space})
            assert created.status_code == 201, created.text
        event = await feed.next()
        assert (event["event"], event["data"]["note_id"]) == ("created", "alpha")
        # Another workspace's events are not offered, even named.
        refused = await alpha_viewer.get("/api/events", params={"workspace_id": "beta"})
        assert refused.status_code == 403
        # Search is scoped alike.
        await admin.put("/api/notes/beta/text", json={"text": "common word"})
        await admin.put("/api/notes/alpha/text", json={"text": "common word"})
        assert (await feed.until("changed"))["data"]["note_id"] == "alpha"
        hits = await alpha_viewer.get("/api/search", params={"q": "common"})
        assert [hit["note_id"] for hit in hits.json()["items"]] == ["alpha"]
        async with httpx.AsyncClient(base_url=url, headers=bearer(editor), timeout=10) as beta:
            hits = await beta.get("/api/search", params={"q": "common"})
            assert [hit["note_id"] for hit in hits.json()["items"]] == ["beta"]
        secured.cli("token", "revoke", viewer.split("_")[1])
        ended = await feed.until("end", timeout=10)
        assert "no longer" in ended["data"]["reason"]
        with pytest.raises((EOFError, httpx.HTTPError)):
            await feed.next(5)
    assert (await httpx.AsyncClient(base_url=url).get("/api/events")).status_code == 401
