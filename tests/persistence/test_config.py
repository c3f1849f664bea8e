"""Database selection from the environment, and the one-line errors that name the variable."""

from pathlib import Path

import pytest

from persistence.config import MEMORY_WARNING, ConfigError, database_config_from_env


def resolve(tmp_path: Path, **env: str):
    # Relative default paths resolve against the working directory; tests pass paths explicitly.
    return database_config_from_env(env)


def test_default_is_sqlite_in_dot_coscribe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = database_config_from_env({})
    assert config.driver == "sqlite"
    assert config.sqlite_path == tmp_path / ".coscribe" / "coscribe.sqlite"
    assert (tmp_path / ".coscribe").is_dir(), "the folder is created on first run"
    assert config.warning is None


def test_sqlite_path_variable(tmp_path):
    path = tmp_path / "deep" / "er" / "notes.sqlite"
    config = resolve(tmp_path, COSCRIBE_SQLITE_PATH=str(path))
    assert config.driver == "sqlite"
    assert config.sqlite_path == path
    assert path.parent.is_dir()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_database_url_selects_postgres(tmp_path, scheme):
    config = resolve(tmp_path, DATABASE_URL=f"{scheme}://app:secret@db.example:6543/notes")
    assert config.driver == "postgres"
    assert config.url.drivername == "postgresql+psycopg"
    assert (config.url.host, config.url.port, config.url.database) == ("db.example", 6543, "notes")
    assert "secret" not in config.display_url


def test_database_url_sqlite(tmp_path):
    config = resolve(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path}/x/notes.sqlite")
    assert config.driver == "sqlite"
    assert config.sqlite_path == tmp_path / "x" / "notes.sqlite"


def test_database_url_wins_over_default_and_agrees_with_forced_driver(tmp_path):
    config = resolve(tmp_path, DATABASE_URL="postgresql://h/db", COSCRIBE_DB_DRIVER="postgres")
    assert config.driver == "postgres"


def test_memory_driver_warns(tmp_path):
    config = resolve(tmp_path, COSCRIBE_DB_DRIVER="memory")
    assert config.driver == "memory"
    assert config.sqlite_path is None
    assert config.warning == MEMORY_WARNING
    assert "lost" in MEMORY_WARNING


def test_forced_sqlite_driver(tmp_path):
    config = resolve(
        tmp_path, COSCRIBE_DB_DRIVER="sqlite", COSCRIBE_SQLITE_PATH=str(tmp_path / "a.db")
    )
    assert config.driver == "sqlite"


def test_empty_values_count_as_unset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = database_config_from_env({"DATABASE_URL": "", "COSCRIBE_DB_DRIVER": " "})
    assert config.driver == "sqlite"


@pytest.mark.parametrize(
    ("env", "variable", "words"),
    [
        ({"DATABASE_URL": "mysql://root@h/db"}, "DATABASE_URL", "unsupported scheme 'mysql'"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL", "unsupported scheme"),
        ({"DATABASE_URL": "sqlite://"}, "DATABASE_URL", "sqlite:///PATH"),
        ({"DATABASE_URL": "sqlite:///:memory:"}, "DATABASE_URL", "COSCRIBE_DB_DRIVER=memory"),
        ({"DATABASE_URL": "postgresql://h:notaport/db"}, "DATABASE_URL", "not a valid"),
        ({"DATABASE_URL": "postgresql:///db"}, "DATABASE_URL", "needs a host"),
        ({"COSCRIBE_DB_DRIVER": "postgres"}, "COSCRIBE_DB_DRIVER", "DATABASE_URL is not set"),
        ({"COSCRIBE_DB_DRIVER": "oracle"}, "COSCRIBE_DB_DRIVER", "unknown driver 'oracle'"),
        (
            {"COSCRIBE_DB_DRIVER": "sqlite", "DATABASE_URL": "postgresql://h/db"},
            "COSCRIBE_DB_DRIVER",
            "DATABASE_URL selects postgres",
        ),
        (
            {"COSCRIBE_DB_DRIVER": "memory", "DATABASE_URL": "postgresql://h/db"},
            "COSCRIBE_DB_DRIVER",
            "unset one of them",
        ),
        (
            {"COSCRIBE_DB_DRIVER": "memory", "COSCRIBE_SQLITE_PATH": "x.db"},
            "COSCRIBE_SQLITE_PATH",
            "keeps no file",
        ),
        (
            {"DATABASE_URL": "postgresql://h/db", "COSCRIBE_SQLITE_PATH": "x.db"},
            "COSCRIBE_SQLITE_PATH",
            "already selects",
        ),
        ({"COSCRIBE_SQLITE_PATH": "/proc/nope/notes.db"}, "COSCRIBE_SQLITE_PATH", "cannot create"),
        ({"COSCRIBE_DB_POOL_SIZE": "many"}, "COSCRIBE_DB_POOL_SIZE", "whole number"),
        ({"COSCRIBE_DB_POOL_SIZE": "0"}, "COSCRIBE_DB_POOL_SIZE", "greater than 0"),
        (
            {"COSCRIBE_DB_DRIVER": "memory", "REDIS_URL": "redis://127.0.0.1"},
            "REDIS_URL",
            "needs PostgreSQL",
        ),
    ],
)
def test_bad_configuration_names_the_variable(tmp_path, monkeypatch, env, variable, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        database_config_from_env(env)
    message = str(caught.value)
    assert message.startswith(f"{variable}: ")
    assert words in message
    assert "\n" not in message
    assert caught.value.variable == variable


def test_sqlite_path_that_is_a_directory(tmp_path):
    with pytest.raises(ConfigError, match=r"^COSCRIBE_SQLITE_PATH: .*is a directory"):
        database_config_from_env({"COSCRIBE_SQLITE_PATH": str(tmp_path)})


def test_sqlite_folder_blocked_by_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"^COSCRIBE_SQLITE_PATH: cannot create folder"):
        database_config_from_env({"COSCRIBE_SQLITE_PATH": str(blocker / "db.sqlite")})
