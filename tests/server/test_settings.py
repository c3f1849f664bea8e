"""Settings: every COSCRIBE_ variable parsed and checked once, at start, from the fields'
metadata; retention included; deprecated names still read, with one warning."""

import logging

import pytest

from persistence import retention
from persistence.config import ConfigError
from server.settings import Settings, current_names, load_settings
from tests.live_server import LiveServer, run_cli

MEMORY = {"COSCRIBE_DB_DRIVER": "memory"}  # no SQLite folder created by these tests
BOUNDED = [f for f in Settings.fields() if "minimum" in f.metadata or "maximum" in f.metadata]
# The names that were once a hard-coded "must be > 0" list: each must keep its bound.
POSITIVE = {
    "flush_window_ms", "flush_retry_max_ms", "max_frame_bytes", "max_body_bytes",
    "max_update_bytes", "send_queue_bytes", "awareness_timeout_s",
    "ws_ping_interval_s", "shutdown_timeout_s", "compact_after_updates", "worker_poll_s",
    "job_lease_s", "auth_recheck_s", "max_note_bytes", "max_connections_per_note",
    "max_connections_per_address", "max_updates_per_s", "update_burst", "handshake_timeout_s",
    "max_handshake_bytes", "storage_wait_s", "storage_probe_s",
    "max_awareness_ids_per_connection", "max_awareness_state_bytes",
    "max_awareness_states_per_note", "max_awareness_bytes_per_note", "body_timeout_s",
    "max_http_connections_per_address", "max_any_depth", "max_type_depth",
    "max_update_entries", "max_update_structs", "max_update_string_bytes",
}  # fmt: skip
RETENTION = {
    "version_retention_s": "COSCRIBE_VERSION_RETENTION_DEFAULT_SECONDS",
    "deleted_note_retention_s": "COSCRIBE_DELETED_NOTE_RETENTION_DEFAULT_SECONDS",
    "job_retention_s": "COSCRIBE_JOB_RETENTION_DEFAULT_SECONDS",
}


def load(**variables: str) -> Settings:
    return load_settings({**MEMORY, **variables})


def accepted(variable: str, raw: str, name: str) -> None:
    """The value passes its own bounds (a rule across fields may still refuse it, naming
    another variable: send_queue_bytes=1 cannot hold the awareness welcome frame)."""
    try:
        assert getattr(load(**{variable: raw}), name) == int(raw)
    except ConfigError as exc:
        assert exc.variable != variable, str(exc)


def refused(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings({**MEMORY, **env})
    assert "\n" not in str(caught.value)
    return caught.value


def test_defaults_load_and_carry_the_database():
    settings = load()
    assert settings.database is not None and settings.database.driver == "memory"
    assert settings.retention_policy == retention.RetentionPolicy()
    assert {f.name for f in Settings.fields()} >= POSITIVE | set(RETENTION)
    assert "database" not in {f.name for f in Settings.fields()}


def test_every_formerly_positive_field_still_has_a_minimum_of_1():
    assert {f.name for f in Settings.fields() if f.metadata.get("minimum") == 1} >= POSITIVE


@pytest.mark.parametrize("field", BOUNDED, ids=lambda f: f.name)
def test_bounds_in_metadata_are_enforced(field):
    variable = Settings.env_name(field.name)
    minimum, maximum = field.metadata.get("minimum"), field.metadata.get("maximum")
    if minimum is not None:
        error = refused({variable: str(minimum - 1)})
        assert error.variable == variable
        assert str(error) == f"{variable}: must be at least {minimum}, got {minimum - 1}"
        accepted(variable, str(minimum), field.name)
    if maximum is not None:
        error = refused({variable: str(maximum + 1)})
        assert str(error) == f"{variable}: must be at most {maximum}, got {maximum + 1}"
        accepted(variable, str(maximum), field.name)


def test_bounds_apply_to_command_line_overrides_too():
    with pytest.raises(ConfigError, match="COSCRIBE_PORT: must be at most 65535"):
        load_settings(MEMORY, port=70000)


@pytest.mark.parametrize("name", list(RETENTION))
@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("ninety", "expected a whole number, got 'ninety'"),
        ("1.5", "expected a whole number"),
        ("90d", "expected a whole number"),
        ("-1", "must be at least 0, got -1"),
        (str(retention.MAX_RETENTION_S + 1), f"must be at most {retention.MAX_RETENTION_S}"),
    ],
)
def test_a_bad_retention_variable_is_one_line_naming_it(name, raw, words):
    variable = Settings.env_name(name)
    error = refused({variable: raw})
    assert error.variable == variable
    assert str(error).startswith(f"{variable}: {words}")


def test_retention_variables_reach_the_policy():
    settings = load(
        COSCRIBE_VERSION_RETENTION_S="3600",
        COSCRIBE_DELETED_NOTE_RETENTION_S="0",
        COSCRIBE_JOB_RETENTION_S=" 60 ",
    )
    assert settings.retention_policy == retention.RetentionPolicy(3600, 0, 60)


@pytest.mark.parametrize(("name", "old"), list(RETENTION.items()))
def test_a_deprecated_name_works_and_warns_once(name, old, caplog):
    caplog.set_level(logging.WARNING, logger="coscribe.settings")
    settings = load(**{old: "120"})
    assert getattr(settings, name) == 120
    new = Settings.env_name(name)
    lines = [r.getMessage() for r in caplog.records if r.name == "coscribe.settings"]
    assert lines == [f"{old} is deprecated: rename it {new} (same value)"]


def test_a_bad_value_under_a_deprecated_name_names_that_name_and_does_not_warn(caplog):
    caplog.set_level(logging.WARNING, logger="coscribe.settings")
    old = "COSCRIBE_JOB_RETENTION_DEFAULT_SECONDS"
    error = refused({old: "7d"})
    assert str(error) == f"{old}: expected a whole number, got '7d'"
    assert not caplog.records


def test_both_names_at_once_are_refused():
    error = refused(
        {"COSCRIBE_JOB_RETENTION_S": "60", "COSCRIBE_JOB_RETENTION_DEFAULT_SECONDS": "60"}
    )
    assert error.variable == "COSCRIBE_JOB_RETENTION_DEFAULT_SECONDS"
    assert "COSCRIBE_JOB_RETENTION_S" in str(error)


def test_current_names_renames_only_deprecated_variables():
    env = {"COSCRIBE_JOB_RETENTION_DEFAULT_SECONDS": "60", "COSCRIBE_PORT": "1", "OTHER": "x"}
    assert current_names(env) == {
        "COSCRIBE_JOB_RETENTION_S": "60",
        "COSCRIBE_PORT": "1",
        "OTHER": "x",
    }


# --- as operators meet it: real processes ---------------------------------------------------


def test_a_bad_retention_variable_stops_serve_with_one_line(tmp_path):
    result = run_cli(["serve"], {**MEMORY, "COSCRIBE_JOB_RETENTION_S": "7d"}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["coscribe: error: COSCRIBE_JOB_RETENTION_S: expected a whole number, got '7d'"]


def test_serve_reads_a_deprecated_name_and_says_so_once(tmp_path):
    # SQLite: the first start migrates in a child process, which must not say it again.
    old = "COSCRIBE_VERSION_RETENTION_DEFAULT_SECONDS"
    with LiveServer({old: "0", "COSCRIBE_SQLITE_PATH": str(tmp_path / "s.db")}, tmp_path) as server:
        pass
    line = f"{old} is deprecated: rename it COSCRIBE_VERSION_RETENTION_S (same value)"
    assert server.log().count(line) == 1, server.log()


def test_a_removed_variable_is_named_once_at_start(caplog):
    load_settings({**MEMORY, "COSCRIBE_SEND_QUEUE_FRAMES": "64"})
    lines = [r.getMessage() for r in caplog.records if "SEND_QUEUE_FRAMES" in r.getMessage()]
    assert lines == [
        "COSCRIBE_SEND_QUEUE_FRAMES no longer has an effect: COSCRIBE_SEND_QUEUE_BYTES alone "
        "bounds what a connection may leave unsent"
    ]
