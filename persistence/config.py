"""Database selection from the environment.

Order (first match wins):
1. ``DATABASE_URL``: ``postgresql://`` or ``postgres://`` selects PostgreSQL,
   ``sqlite:///PATH`` SQLite.
2. ``COSCRIBE_DB_DRIVER`` = ``sqlite`` | ``postgres`` | ``memory`` forces a driver.
3. Otherwise SQLite at ``COSCRIBE_SQLITE_PATH`` (default ``.coscribe/coscribe.sqlite``).

Every mistake is a ConfigError whose message is one line naming the variable to fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

Driver = Literal["sqlite", "postgres", "memory"]
DRIVERS: tuple[Driver, ...] = ("sqlite", "postgres", "memory")
DEFAULT_SQLITE_PATH = ".coscribe/coscribe.sqlite"
DEFAULT_POOL_SIZE = 10
DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 5000
# Every variable read here: (default as the docs show it, the docs' line of help).
# server.settings carries the resulting DatabaseConfig; docs/configuration.md lists these and
# tests/test_docs.py checks that it does.
VARIABLES = {
    "DATABASE_URL": (
        "unset",
        "PostgreSQL (`postgresql://`, `postgres://`) or SQLite (`sqlite:///PATH`)",
    ),
    "COSCRIBE_DB_DRIVER": ("unset", "force `sqlite`, `postgres` or `memory`"),
    "COSCRIBE_SQLITE_PATH": (DEFAULT_SQLITE_PATH, "SQLite database file"),
    "COSCRIBE_DB_POOL_SIZE": (
        str(DEFAULT_POOL_SIZE),
        "pooled connections (PostgreSQL may open as many again under load; SQLite uses it as is)",
    ),
    "COSCRIBE_SQLITE_BUSY_TIMEOUT_MS": (
        str(DEFAULT_SQLITE_BUSY_TIMEOUT_MS),
        "how long a SQLite writer waits for the write lock",
    ),
    "REDIS_URL": (
        "unset",
        "cluster mode: instances share live notes through Redis (`redis://`, `rediss://`, "
        "`unix://`); requires PostgreSQL",
    ),
}
MEMORY_WARNING = (
    "WARNING: COSCRIBE_DB_DRIVER=memory keeps everything in memory: all data is lost on exit."
)


class ConfigError(ValueError):
    """A configuration value is missing, malformed or contradicts another one."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {problem}")


@dataclass(frozen=True)
class DatabaseConfig:
    driver: Driver
    url: URL
    sqlite_path: Path | None = None
    pool_size: int = DEFAULT_POOL_SIZE
    sqlite_busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS

    @property
    def display_url(self) -> str:
        """The URL with any password masked, safe for logs."""
        return self.url.render_as_string(hide_password=True)

    @property
    def warning(self) -> str | None:
        return MEMORY_WARNING if self.driver == "memory" else None


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"expected a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(name, f"must be greater than 0, got {value}")
    return value


def _postgres_url(raw: str) -> URL:
    # Both spellings are common (Heroku and friends use postgres://); psycopg 3 is our driver.
    scheme, rest = raw.split("://", 1)
    try:
        url = make_url("postgresql+psycopg://" + rest)
    except (sa_exc.ArgumentError, ValueError) as exc:  # ValueError: a bad port
        raise ConfigError("DATABASE_URL", f"not a valid {scheme}:// URL ({exc})") from None
    if not url.host and not url.query.get("host"):
        raise ConfigError("DATABASE_URL", "a PostgreSQL URL needs a host")
    return url


def _prepare_sqlite_path(variable: str, raw: str) -> Path:
    path = Path(raw).expanduser()
    if path.exists() and path.is_dir():
        raise ConfigError(variable, f"{raw!r} is a directory, expected a database file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            variable, f"cannot create folder {str(path.parent)!r}: {exc.strerror or exc}"
        ) from None
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(variable, f"folder {str(path.parent)!r} is not writable")
    return path.resolve()


def database_config_from_env(env: Mapping[str, str] | None = None) -> DatabaseConfig:
    """Resolve the database from the environment. Creates the SQLite folder if needed."""
    env = os.environ if env is None else env
    database_url = _get(env, "DATABASE_URL")
    forced = _get(env, "COSCRIBE_DB_DRIVER")
    sqlite_path = _get(env, "COSCRIBE_SQLITE_PATH")
    redis_url = _get(env, "REDIS_URL")
    pool_size = _positive_int(env, "COSCRIBE_DB_POOL_SIZE", DEFAULT_POOL_SIZE)
    busy_ms = _positive_int(env, "COSCRIBE_SQLITE_BUSY_TIMEOUT_MS", DEFAULT_SQLITE_BUSY_TIMEOUT_MS)

    if forced is not None and forced not in DRIVERS:
        raise ConfigError(
            "COSCRIBE_DB_DRIVER",
            f"unknown driver {forced!r} (expected one of {', '.join(DRIVERS)})",
        )

    driver: Driver
    url: URL
    path: Path | None = None
    if database_url is not None:
        scheme = urlsplit(database_url).scheme.lower() if "://" in database_url else ""
        if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
            driver, url = "postgres", _postgres_url(database_url)
        elif scheme == "sqlite":
            raw_path = (
                database_url[len("sqlite:///") :] if database_url.startswith("sqlite:///") else ""
            )
            if not raw_path or raw_path == ":memory:":
                raise ConfigError(
                    "DATABASE_URL",
                    "expected sqlite:///PATH with a file path "
                    "(for an in-memory database set COSCRIBE_DB_DRIVER=memory instead)",
                )
            driver = "sqlite"
            path = _prepare_sqlite_path("DATABASE_URL", raw_path)
        else:
            shown = scheme or database_url[:20]
            raise ConfigError(
                "DATABASE_URL",
                f"unsupported scheme {shown!r} (expected postgresql://, postgres:// or sqlite:///PATH)",
            )
        if forced is not None and forced != driver:
            raise ConfigError(
                "COSCRIBE_DB_DRIVER",
                f"is {forced!r} but DATABASE_URL selects {driver}; unset one of them",
            )
        if sqlite_path is not None:
            raise ConfigError(
                "COSCRIBE_SQLITE_PATH", "is set but DATABASE_URL already selects the database"
            )
    elif forced == "postgres":
        raise ConfigError(
            "COSCRIBE_DB_DRIVER", "is 'postgres' but DATABASE_URL is not set (postgresql://...)"
        )
    elif forced == "memory":
        if sqlite_path is not None:
            raise ConfigError(
                "COSCRIBE_SQLITE_PATH", "is set but COSCRIBE_DB_DRIVER=memory keeps no file"
            )
        driver = "memory"
    else:
        driver = "sqlite"
        path = _prepare_sqlite_path("COSCRIBE_SQLITE_PATH", sqlite_path or DEFAULT_SQLITE_PATH)

    if driver == "sqlite":
        assert path is not None
        url = URL.create("sqlite+pysqlite", database=str(path))
    elif driver == "memory":
        url = URL.create("sqlite+pysqlite", database=":memory:")

    if redis_url is not None and driver != "postgres":
        raise ConfigError(
            "REDIS_URL",
            f"is set but the database is {driver}; sharing rooms across instances needs PostgreSQL",
        )
    return DatabaseConfig(
        driver=driver,
        url=url,
        sqlite_path=path,
        pool_size=pool_size,
        sqlite_busy_timeout_ms=busy_ms,
    )
