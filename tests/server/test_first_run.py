"""A new install as its operator meets it: the README's commands in the order written, the
workspace commands, the first admin token, and the maintenance commands' figures. Real
`coscribe` processes on real databases."""

from __future__ import annotations

import re
import socket

import httpx
import pycrdt
import pytest

from persistence import notes, update_log, versions
from persistence.config import database_config_from_env
from persistence.engine import Database
from tests.live_server import LiveServer, run_cli
from tests.processes import free_port
from tests.server.test_cli import assert_one_line_error

TOKEN = re.compile(r"cs_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")


def sqlite_env(tmp_path) -> dict[str, str]:
    return {"COSCRIBE_SQLITE_PATH": str(tmp_path / "first.sqlite")}


def ok(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("driver", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_readme_commands_work_in_the_order_written(request, tmp_path, driver):
    if driver == "sqlite":
        env = sqlite_env(tmp_path)
    else:
        env = {"DATABASE_URL": request.getfixturevalue("postgres_schemas").new()}
    ok(run_cli(["db", "migrate"], env, tmp_path))
    # Right after the migration, before any note or start: the default workspace is there.
    created = run_cli(
        ["token", "create", "--workspace", "default", "--role", "editor"], env, tmp_path
    )
    assert TOKEN.fullmatch(ok(created).strip())
    assert "editor of workspace default" in created.stderr
    listed = ok(run_cli(["workspace", "list"], env, tmp_path))
    assert "default" in listed
    again = ok(run_cli(["db", "migrate"], env, tmp_path))  # idempotent
    assert "already up to date" in again
    assert ok(run_cli(["workspace", "list"], env, tmp_path)).count("Default") == 1


def test_a_token_without_a_workspace_is_refused_in_good_english(tmp_path):
    result = run_cli(["token", "create", "--role", "editor"], sqlite_env(tmp_path), tmp_path)
    assert_one_line_error(result, "an editor token needs a workspace")
    result = run_cli(["token", "create", "--role", "viewer"], sqlite_env(tmp_path), tmp_path)
    assert_one_line_error(result, "a viewer token needs a workspace")


def test_workspace_commands_and_slugs_everywhere(tmp_path):
    env = sqlite_env(tmp_path)
    workspace_id = ok(run_cli(["workspace", "create", "team", "--name", "The team"], env, tmp_path))
    workspace_id = workspace_id.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", workspace_id)
    listed = ok(run_cli(["workspace", "list"], env, tmp_path))
    assert "team" in listed and "The team" in listed and workspace_id in listed

    token = ok(
        run_cli(["token", "create", "--workspace", "team", "--role", "viewer"], env, tmp_path)
    )
    tokens_listed = ok(run_cli(["token", "list"], env, tmp_path))
    assert f"team ({workspace_id})" in tokens_listed
    assert token.strip() not in tokens_listed

    renamed = run_cli(
        ["workspace", "rename", "team", "--slug", "core", "--name", "Core"], env, tmp_path
    )
    assert "slug core" in ok(renamed)
    assert "core" in ok(run_cli(["token", "list"], env, tmp_path))  # tokens follow the workspace
    by_id = run_cli(["workspace", "rename", workspace_id, "--name", "Core team"], env, tmp_path)
    assert "Core team" in ok(by_id)

    dry = ok(run_cli(["workspace", "delete", "core", "--dry-run"], env, tmp_path))
    assert "would delete workspace core" in dry
    assert "core" in ok(run_cli(["workspace", "list"], env, tmp_path))
    refused = run_cli(["workspace", "delete", "core"], env, tmp_path)  # no terminal: no "yes"
    assert refused.returncode != 0
    assert "aborted" in refused.stderr
    gone = ok(run_cli(["workspace", "delete", "core", "--yes"], env, tmp_path))
    assert "deleted workspace core" in gone
    assert "core" not in ok(run_cli(["workspace", "list"], env, tmp_path))
    # Its tokens went with it.
    assert "viewer" not in ok(run_cli(["token", "list"], env, tmp_path))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["workspace", "create", "No Spaces"], ["invalid workspace slug"]),
        (["workspace", "create", "default"], ["reserved"]),
        (["workspace", "rename", "nowhere", "--name", "x"], ["workspace 'nowhere' not found"]),
        (["workspace", "rename", "default"], ["--slug, --name or both"]),
        (["workspace", "rename", "default", "--slug", "-x"], ["slug"]),
        (["workspace", "delete", "nowhere", "--yes"], ["not found"]),
        (["token", "create", "--role", "editor", "--workspace", "nowhere"], ["not found"]),
    ],
)
def test_workspace_bad_input_is_one_line(tmp_path, args, words):
    assert_one_line_error(run_cli(args, sqlite_env(tmp_path), tmp_path), *words)


def test_a_start_that_cannot_bind_creates_no_token_and_says_why(tmp_path):
    env = {**sqlite_env(tmp_path), "COSCRIBE_AUTH": "true"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        failed = run_cli(["serve", "--port", str(port)], env, tmp_path)
    assert failed.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in failed.stderr
    assert "--port or COSCRIBE_PORT" in failed.stderr
    assert "No access token was created" in failed.stderr
    assert "#token=" not in failed.stdout + failed.stderr
    assert "no tokens" in ok(run_cli(["token", "list", "--all"], env, tmp_path))
    # The next start that listens creates the token and shows its link, once.
    with LiveServer(env, tmp_path) as server:
        link = re.search(r"http://127\.0\.0\.1:(\d+)/#token=(\S+)", server.log())
        assert link and int(link.group(1)) == server.port, server.log()
        assert "token create --role admin" in server.log()  # how to get another
        headers = {"Authorization": f"Bearer {link.group(2)}"}
        assert httpx.get(f"{server.url}/api/workspaces", headers=headers).status_code == 200
    # Later starts show no token, but how to get one.
    with LiveServer(env, tmp_path) as server:
        later = server.log().split("Lost this link?")[-1]
        assert "#token=" not in later and "coscribe token create --role admin" in later


def _note_with_a_version_and_a_tail(env: dict[str, str], note_id: str, before: int, after: int):
    """A note whose log holds `before` rows a version already holds and `after` rows past it."""
    doc = pycrdt.Doc()
    text = doc.get("content", type=pycrdt.Text)
    with Database(database_config_from_env(env)) as db, db.begin() as conn:
        notes.create_note(conn, workspace_id="default", note_id=note_id, title=f"Title {note_id}")
        for n in range(before + after):
            state = doc.get_state()
            text.insert(len(text), f"{n};")
            update_log.append_update(conn, note_id, doc.get_update(state))
            if n == before - 1:
                versions.create_version(conn, note_id, label="kept")


def test_compact_dry_run_and_the_real_run_report_the_same_numbers(tmp_path):
    env = sqlite_env(tmp_path)
    ok(run_cli(["db", "migrate"], env, tmp_path))
    _note_with_a_version_and_a_tail(env, "long", before=180, after=3)
    _note_with_a_version_and_a_tail(env, "short", before=0, after=5)
    dry = ok(run_cli(["compact", "--all", "--dry-run"], env, tmp_path))
    real = ok(run_cli(["compact", "--all"], env, tmp_path))
    line = re.compile(r"^(\S+): (\d+) rows, (.+?) -> 1 rows[,;].*?(\d+) log rows", re.MULTILINE)
    planned = {m.group(1): m.group(2, 3, 4) for m in line.finditer(dry)}
    done = {m.group(1): m.group(2, 3, 4) for m in line.finditer(real)}
    # The version plus the 3 updates after it; the 183 rows of the log are deleted.
    assert planned["long"] == done["long"] and planned["long"][0] == "4", (dry, real)
    assert planned["long"][2] == "183"
    assert planned["short"] == done["short"] and planned["short"][::2] == ("5", "5")
    assert "would compact 2 notes: 9 rows" in dry and "188 log rows to delete" in dry
    assert "compacted 2 notes: 9 rows" in real and "188 log rows deleted" in real
    assert "would compact 0 notes" in ok(run_cli(["compact", "--all", "--dry-run"], env, tmp_path))


def test_stats_finds_the_server_where_it_listens_and_names_notes(tmp_path):
    env = sqlite_env(tmp_path)
    ok(run_cli(["db", "migrate"], env, tmp_path))
    _note_with_a_version_and_a_tail(env, "big-note", before=0, after=20)
    port = free_port()
    # The port is on the server's command line only: stats' own settings say 8000.
    with LiveServer(env, tmp_path, port=port):
        stats = ok(run_cli(["stats"], env, tmp_path))
        assert f"server at http://127.0.0.1:{port}: 0 rooms live" in stats, stats
    assert "big-note" in stats and "Title big-note" in stats and "default" in stats
    # Stopped: its record is gone, and stats says where it looked.
    stats = ok(run_cli(["stats"], env, tmp_path))
    assert "http://127.0.0.1:8000: not reachable" in stats
    assert_one_line_error(run_cli(["stats", "--url", "file:///etc/passwd"], env, tmp_path), "--url")
