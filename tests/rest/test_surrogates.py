"""A lone UTF-16 surrogate is not a character: every text input refuses it with a 422 problem,
before anything is stored (it used to reach the encoder or the driver and answer 500)."""

import json
import re

import pytest

from server.rest import build
from server.rest.api import path_parameters
from tests.rest.conftest import assert_problem

LONE = "\ud800"
SQLITE = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


def send(client, method: str, path: str, body):
    """JSON with its non-ASCII escaped, as most clients write it: "\\ud800" on the wire."""
    headers = {"content-type": "application/json"}
    return client.request(method, path, content=json.dumps(body), headers=headers)


def _body_endpoints():
    for endpoint in build().endpoints:
        if endpoint.body is None:
            continue
        path = endpoint.path
        for name in path_parameters(path):
            path = re.sub(rf"{{{name}(:\w+)?}}", "x", path)
        for field in endpoint.body.model_fields:
            yield pytest.param(endpoint.method, path, field, id=f"{endpoint.method} {path} {field}")


@SQLITE
@pytest.mark.parametrize(("method", "path", "field"), list(_body_endpoints()))
def test_every_body_field_refuses_a_lone_surrogate(client, method, path, field):
    response = send(client, method, path, {field: f"a{LONE}b"})
    body = assert_problem(response, 422, f"body.{field}: ", "surrogate")
    assert body["errors"][0]["location"] == ["body", field]


@SQLITE
def test_note_text_edits_refuse_lone_surrogates_and_change_nothing(client):
    created = send(client, "POST", "/api/notes", {"id": "n1", "text": "kept"})
    assert created.status_code == 201, created.text
    for surrogate in ("\ud800", "\udfff", "x\udc00y"):
        assert_problem(
            send(client, "PUT", "/api/notes/n1/text", {"text": surrogate}), 422, "body.text"
        )
        assert_problem(
            send(client, "POST", "/api/notes/n1/text", {"text": surrogate, "position": 0}),
            422,
            "body.text",
        )
        assert_problem(
            send(client, "PATCH", "/api/notes/n1", {"title": surrogate}), 422, "body.title"
        )
    assert_problem(send(client, "POST", "/api/notes", {"id": "n2", "text": LONE}), 422, "body.text")
    assert client.get("/api/notes/n1/content", headers={"accept": "text/plain"}).text == "kept"
    assert client.get("/api/notes/n1").json()["title"] == ""
    assert client.get("/api/notes/n2").status_code == 404
    # A pair is one character, and fine.
    replaced = send(client, "PUT", "/api/notes/n1/text", {"text": "\ud83d\ude00"})
    assert replaced.status_code == 200 and replaced.json()["text"] == "\U0001f600"


@SQLITE
def test_raw_utf8_surrogate_bytes_are_refused_too(client):
    send(client, "POST", "/api/notes", {"id": "n1"})
    raw = b'{"text": "\xed\xa0\x80"}'  # what encoding "\ud800" with surrogatepass gives
    response = client.put(
        "/api/notes/n1/text", content=raw, headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "body.text")


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/api/workspaces", {"slug": "s", "name": LONE}, "body.name"),
        (
            "/api/workspaces",
            {"slug": "s", "name": "n", "settings": {"k": [1, LONE]}},
            "body.settings.k.1",
        ),
        (
            "/api/workspaces",
            {"slug": "s", "name": "n", "settings": {LONE: 1}},
            "body.settings.\\ud800",
        ),
        ("/api/agents", {"name": "a", "config": {"deep": {"er": LONE}}}, "body.config.deep.er"),
        ("/api/tasks", {"title": LONE}, "body.title"),
    ],
)
def test_entity_fields_refuse_lone_surrogates_on_every_driver(client, path, body, where):
    assert_problem(send(client, "POST", path, body), 422, where, "surrogate")
    if path == "/api/workspaces":
        assert all(row["slug"] != "s" for row in client.get(path).json()["items"])
