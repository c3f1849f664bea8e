"""Access tokens on every driver: only hashes are stored; revoked, expired and deleted
tokens stop verifying."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from persistence import schema, tokens
from persistence.errors import InvalidError, NotFoundError
from persistence.stores import workspaces


@pytest.fixture
def team(db) -> str:
    with db.begin() as conn:
        return workspaces.create(conn, "team")["id"]


def test_a_token_verifies_and_only_its_hash_is_stored(db, team):
    with db.begin() as conn:
        issued = tokens.issue(conn, "editor", workspace="team", name="ci")
    assert issued.token.startswith(f"cs_{issued.row['id']}_")
    assert "secret_hash" not in issued.row
    with db.read() as conn:
        stored = conn.execute(sa.select(schema.tokens)).mappings().one()
        verdict = tokens.verify(conn, issued.token)
    assert issued.token not in str(dict(stored))
    secret = issued.token.split("_", 2)[2]  # the secret itself may hold "_"
    assert secret not in str(dict(stored)) and len(stored["secret_hash"]) == 64
    assert verdict.row is not None
    assert (verdict.row["role"], verdict.row["workspace_id"]) == ("editor", team)


def test_a_secret_holding_underscores_is_read_whole(db, team):
    """The secret is base64url and holds "_" about half the time: everything after the id is
    the secret, never what follows the last "_" (which made the test above flaky)."""
    with db.begin() as conn:
        for _ in range(200):  # each token has ~49 % odds; 200 misses would be 1 in 10^58
            issued = tokens.issue(conn, "viewer", workspace="team")
            secret = issued.token.split("_", 2)[2]
            if "_" in secret:
                break
        else:
            pytest.fail("no secret with '_' in 200 tokens")
        stored = conn.execute(sa.select(schema.tokens)).mappings().all()
        assert len(secret) == 43 and secret.rsplit("_", 1)[-1] != secret
        assert tokens.parse(issued.token) == issued.row["id"]
        assert tokens.verify(conn, issued.token).reason == "valid"
        assert not any(secret in str(dict(row)) for row in stored)


@pytest.mark.parametrize(
    "presented, reason",
    [
        ("", "malformed token"),
        ("cs_0123456789abcdef_short", "malformed token"),
        ("x" * 10_000, "malformed token"),
        ("cs_0123456789abcdef_" + "A" * 43, "unknown token"),
    ],
)
def test_garbage_does_not_verify(db, team, presented, reason):
    with db.read() as conn:
        verdict = tokens.verify(conn, presented)
    assert verdict.row is None and verdict.reason == reason


def test_a_right_id_with_a_wrong_secret_is_refused(db, team):
    with db.begin() as conn:
        issued = tokens.issue(conn, "viewer", workspace=team)
    forged = issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B")
    with db.read() as conn:
        assert tokens.verify(conn, forged).reason == "unknown token"


def test_revoked_expired_and_deleted_tokens_stop_working(db, team):
    now = datetime.now(UTC)
    with db.begin() as conn:
        revoked = tokens.issue(conn, "editor", workspace=team)
        expiring = tokens.issue(
            conn, "editor", workspace=team, expires_at=now + timedelta(hours=1), now=now
        )
        admin = tokens.issue(conn, "admin")
        tokens.revoke(conn, revoked.row["id"])
    later = now + timedelta(hours=2)
    with db.read() as conn:
        assert tokens.verify(conn, revoked.token).reason == "revoked token"
        assert tokens.verify(conn, expiring.token, now=now).row is not None
        assert tokens.verify(conn, expiring.token, now=later).reason == "expired token"
        ids = [revoked.row["id"], expiring.row["id"], admin.row["id"]]
        assert tokens.active_ids(conn, ids, now=later) == {admin.row["id"]}
    with db.begin() as conn:
        workspaces.delete(conn, team)  # its tokens go with it
    with db.read() as conn:
        assert tokens.verify(conn, expiring.token, now=now).reason == "unknown token"
        assert [row["id"] for row in tokens.list_tokens(conn)] == [admin.row["id"]]


def test_revoking_twice_keeps_the_first_time_and_unknown_ids_are_refused(db, team):
    with db.begin() as conn:
        issued = tokens.issue(conn, "editor", workspace=team)
        first = tokens.revoke(conn, issued.token)  # the whole token works as well as its id
        again = tokens.revoke(conn, issued.row["id"])
        assert first["revoked_at"] == again["revoked_at"] is not None
        with pytest.raises(NotFoundError):
            tokens.revoke(conn, "0123456789abcdef")
        listed = tokens.list_tokens(conn, include_inactive=True)
        assert [row["id"] for row in listed] == [issued.row["id"]]
        assert tokens.list_tokens(conn) == []


@pytest.mark.parametrize(
    "role, workspace, message",
    [
        ("owner", "team", "unknown role"),
        ("editor", None, "needs a workspace"),
        ("viewer", "nowhere", "not found"),
    ],
)
def test_bad_requests_are_refused(db, team, role, workspace, message):
    with db.begin() as conn, pytest.raises((InvalidError, NotFoundError), match=message):
        tokens.issue(conn, role, workspace=workspace)


def test_an_expiry_in_the_past_is_refused(db, team):
    past = datetime.now(UTC) - timedelta(seconds=1)
    with db.begin() as conn, pytest.raises(InvalidError, match="past"):
        tokens.issue(conn, "admin", expires_at=past)
