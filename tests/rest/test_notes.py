"""Notes over REST, in-process on every driver."""

import base64

import pycrdt
import pytest

from tests.rest.conftest import assert_problem

OCTETS = {"content-type": "application/octet-stream"}


@pytest.fixture
def note(client) -> dict:
    response = client.post("/api/notes", json={"title": "Plan", "text": "hello world"})
    assert response.status_code == 201, response.text
    return response.json()


def body(client, note_id: str) -> str:
    response = client.get(f"/api/notes/{note_id}/content", headers={"accept": "text/plain"})
    assert response.status_code == 200, response.text
    return response.text


def test_create_list_rename_delete_undelete(client, workspace):
    ids = [
        client.post("/api/notes", json={"workspace_id": workspace["id"], "title": f"n{i}"}).json()[
            "id"
        ]
        for i in range(3)
    ]
    client.patch(f"/api/notes/{ids[0]}", json={"title": "renamed"})  # now the newest change
    listed = client.get("/api/notes", params={"workspace_id": workspace["id"], "limit": 2}).json()
    assert [item["id"] for item in listed["items"]] == [ids[0], ids[2]]
    assert listed["items"][0]["title"] == "renamed"
    assert {"size", "updated_at", "title"} <= set(listed["items"][0])
    rest = client.get(
        "/api/notes", params={"workspace_id": workspace["id"], "cursor": listed["next_cursor"]}
    ).json()
    assert [item["id"] for item in rest["items"]] == [ids[1]]

    assert client.delete(f"/api/notes/{ids[1]}").status_code == 204
    assert_problem(client.get(f"/api/notes/{ids[1]}"), 404)
    deleted = client.get("/api/notes", params={"workspace_id": workspace["id"], "deleted": True})
    assert [item["id"] for item in deleted.json()["items"]] == [ids[1]]
    assert client.post(f"/api/notes/{ids[1]}/undelete").json()["deleted_at"] is None
    assert_problem(client.post(f"/api/notes/{ids[1]}/undelete"), 409, "not deleted")


def test_content_snapshot_and_state_vector(client, note):
    note_id = note["id"]
    assert body(client, note_id) == "hello world"
    markdown = client.get(f"/api/notes/{note_id}/content", headers={"accept": "text/markdown"})
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert client.get(f"/api/notes/{note_id}/content").json() == {
        "note_id": note_id,
        "content": {"content": "hello world"},
    }
    snapshot = client.get(f"/api/notes/{note_id}/snapshot")
    assert snapshot.headers["content-type"] == "application/octet-stream"
    doc = pycrdt.Doc()
    doc.apply_update(snapshot.content)
    assert str(doc.get("content", type=pycrdt.Text)) == "hello world"
    vector = client.get(f"/api/notes/{note_id}/state-vector").content
    assert vector == doc.get_state()
    # With the state vector of a peer that has everything, only the (empty) rest comes back.
    missing = client.get(
        f"/api/notes/{note_id}/snapshot", params={"state_vector": base64.b64encode(vector).decode()}
    )
    assert len(missing.content) < len(snapshot.content)
    assert_problem(client.get(f"/api/notes/{note_id}/snapshot", params={"state_vector": "!!"}), 400)


def test_binary_updates_apply_and_invalid_ones_change_nothing(client, note):
    note_id = note["id"]
    peer = pycrdt.Doc()
    peer.apply_update(client.get(f"/api/notes/{note_id}/snapshot").content)
    peer.get("content", type=pycrdt.Text).insert(0, ">> ")
    peer.get("meta", type=pycrdt.Map)["tags"] = ["a"]
    result = client.post(f"/api/notes/{note_id}/updates", content=peer.get_update(), headers=OCTETS)
    assert result.status_code == 200 and result.json()["changed"] is True
    again = client.post(f"/api/notes/{note_id}/updates", content=peer.get_update(), headers=OCTETS)
    assert again.json()["changed"] is False
    content = client.get(f"/api/notes/{note_id}/content").json()["content"]
    assert content == {"content": ">> hello world", "meta": {"tags": ["a"]}}

    before = client.get(f"/api/notes/{note_id}/snapshot").content
    assert_problem(
        client.post(f"/api/notes/{note_id}/updates", content=b"\x05junk", headers=OCTETS),
        400,
        "not a valid Yjs update",
    )
    assert_problem(client.post(f"/api/notes/{note_id}/updates", content=peer.get_update()), 415)
    assert_problem(
        client.post("/api/notes/missing/updates", content=b"\x00\x00", headers=OCTETS), 404
    )
    assert client.get(f"/api/notes/{note_id}/snapshot").content == before


def test_text_replace_and_insert(client, note):
    note_id = note["id"]
    replaced = client.put(f"/api/notes/{note_id}/text", json={"text": "hello brave world"})
    assert replaced.json() == {"text": "hello brave world", "edits": 1}
    assert (
        client.post(f"/api/notes/{note_id}/text", json={"text": "¡", "position": 0}).json()["text"]
        == "¡hello brave world"
    )
    assert client.post(f"/api/notes/{note_id}/text", json={"text": "!"}).json()["text"] == (
        "¡hello brave world!"
    )
    assert_problem(client.put(f"/api/notes/{note_id}/text", json={"txt": "x"}), 422, "text")
    assert_problem(
        client.post(f"/api/notes/{note_id}/text", json={"text": "x", "position": -1}), 422
    )
    assert body(client, note_id) == "¡hello brave world!"


def test_versions_and_restore_as_a_forward_change(client, note):
    note_id = note["id"]
    first = client.post(f"/api/notes/{note_id}/versions", json={"label": "first"})
    assert first.status_code == 201
    client.put(f"/api/notes/{note_id}/text", json={"text": "completely different"})
    versions = client.get(f"/api/notes/{note_id}/versions").json()["items"]
    assert [v["label"] for v in versions] == ["first"]
    assert {"created_at", "size", "kind"} <= set(versions[0])
    old = client.get(f"/api/notes/{note_id}/versions/{first.json()['id']}").json()
    assert old["text"] == "hello world"
    as_text = client.get(
        f"/api/notes/{note_id}/versions/{first.json()['id']}", headers={"accept": "text/plain"}
    )
    assert as_text.text == "hello world"

    restored = client.post(f"/api/notes/{note_id}/versions/{first.json()['id']}/restore")
    assert restored.status_code == 201 and restored.json()["kind"] == "restore"
    assert body(client, note_id) == "hello world"
    # History is kept: the text before the restore is a version of its own, and can come back.
    listed = client.get(f"/api/notes/{note_id}/versions").json()["items"]
    assert [v["label"] for v in listed] == [
        f"restored version {first.json()['id']}",
        f"before restoring version {first.json()['id']}",
        "first",
    ]
    before = client.get(f"/api/notes/{note_id}/versions/{listed[1]['id']}").json()
    assert before["text"] == "completely different"
    client.post(f"/api/notes/{note_id}/versions", json={"label": "after restore"})
    assert_problem(client.get(f"/api/notes/{note_id}/versions/999999"), 404)
    assert_problem(client.get(f"/api/notes/{note_id}/versions/abc"), 404)
    assert_problem(client.post(f"/api/notes/{note_id}/versions", json={"label": "x" * 201}), 422)


def test_versions_are_listed_a_page_at_a_time(client, note):
    note_id = note["id"]
    made = [
        client.post(f"/api/notes/{note_id}/versions", json={"label": f"v{i}"}).json()["id"]
        for i in range(5)
    ]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/notes/{note_id}/versions", params=params).json()
        assert len(page["items"]) <= 2
        seen += [v["id"] for v in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    assert_problem(client.get(f"/api/notes/{note_id}/versions", params={"limit": 0}), 422)
    assert_problem(client.get(f"/api/notes/{note_id}/versions", params={"cursor": "junk"}), 422)


def test_bad_input_on_notes(client, note):
    assert_problem(client.post("/api/notes", json={"workspace_id": "nowhere"}), 404, "workspace")
    assert_problem(client.post("/api/notes", json={"id": note["id"]}), 409, "already exists")
    assert_problem(client.post("/api/notes", json={"id": "bad id!"}), 422)
    assert_problem(client.post("/api/notes", json={"surprise": 1}), 422, "surprise")
    assert_problem(client.get("/api/notes/missing/content"), 404)
    assert_problem(client.patch(f"/api/notes/{note['id']}", json={}), 422)
    assert client.get("/api/notes").json()["items"][0]["id"] == note["id"]
