"""One Settings object read from the environment (prefix COSCRIBE_), every knob documented.

Each field's metadata carries its help line; docs/settings.md lists them all and a test keeps
the two in step. Command-line options of `coscribe serve` override the environment.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crdt.awareness import AwarenessLimits
from crdt.validation import Limits
from persistence.config import ConfigError, DatabaseConfig, database_config_from_env
from persistence.errors import InvalidError
from persistence.stores import schedules

from .auth import is_loopback

PREFIX = "COSCRIBE_"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    host: str = setting("127.0.0.1", "Interface to listen on.")
    port: int = setting(8000, "TCP port to listen on (0 picks a free one).")
    log_level: str = setting("info", "Log level: critical, error, warning, info or debug.")
    auth: bool = setting(
        True,
        "Require a token on every API call and websocket. Can be off only on a loopback host.",
    )
    allowed_origins: str = setting(
        "",
        "Websocket Origins allowed besides the server's own, comma-separated (* for any).",
    )
    cors_origins: str = setting(
        "", "Origins whose pages may call the REST API (CORS), comma-separated; empty: none."
    )
    auth_recheck_s: int = setting(
        2, "How often live websockets' tokens and notes are checked again (revocation delay)."
    )
    create_missing_notes: bool = setting(
        True,
        "Create a note when a client that may write opens an unknown id (in its token's "
        "workspace, else the default one).",
    )
    flush_window_ms: int = setting(
        20, "Group commit window: updates arriving within it are stored in one transaction."
    )
    flush_retry_max_ms: int = setting(
        5000, "Longest wait between retries of a failed flush (the room stays dirty meanwhile)."
    )
    max_frame_bytes: int = setting(
        16 * 1024 * 1024, "Largest websocket frame accepted; bigger frames close with 1009."
    )
    max_note_bytes: int = setting(
        64 * 1024 * 1024,
        "Largest a note may grow (its encoded state); an update past it is refused (1009/413).",
    )
    max_connections_per_note: int = setting(
        500, "Websockets one note accepts at once; more are closed with 1013."
    )
    max_connections_per_address: int = setting(
        200, "Websockets one client address may hold at once; more are closed with 1013."
    )
    max_updates_per_s: int = setting(
        100, "Update and awareness messages per second one websocket may send, on average."
    )
    update_burst: int = setting(
        1000, "Messages a websocket may send at once above that rate; past it, close 1008."
    )
    handshake_timeout_s: int = setting(
        10, "Time a client has to send a complete request head (HTTP or websocket upgrade)."
    )
    max_handshake_bytes: int = setting(
        16 * 1024, "Largest request head (request line and headers) accepted; bigger gets 431."
    )
    max_body_bytes: int = setting(
        1024 * 1024, "Largest JSON request body accepted over REST; bigger ones get 413."
    )
    max_update_bytes: int = setting(
        16 * 1024 * 1024, "Largest binary Yjs update accepted over REST; bigger ones get 413."
    )
    max_any_depth: int = setting(
        100,
        "Deepest nesting of arrays and objects in one JSON-like value of an update (Y.Map and "
        "Y.Array values, embeds, formatting); deeper is refused (1007/400).",
    )
    max_type_depth: int = setting(
        100,
        "Deepest nesting of shared types (XML elements, maps, arrays inside each other) in a "
        "note, across all its updates; an update going deeper is refused (1007/400).",
    )
    max_update_entries: int = setting(
        4 * 1024 * 1024,
        "Largest count one update may announce (clients, structs, deletions, values, entries "
        "of an array or object); more is refused (1009/413).",
    )
    max_update_structs: int = setting(
        20_000,
        "Most structs one update from a client may hold (the whole 260k-edit automerge-paper "
        "document is 11k); more is refused (1009/413). yrs spends quadratic time on some "
        "shapes of many structs (20k: 0.35 s on the event loop).",
    )
    max_update_string_bytes: int = setting(
        16 * 1024 * 1024,
        "Longest string or byte array inside an update; longer is refused (1009/413).",
    )
    send_queue_frames: int = setting(
        1024, "Frames waiting to be sent to one connection before it counts as too slow (1013)."
    )
    send_queue_bytes: int = setting(
        32 * 1024 * 1024,
        "Bytes waiting to be sent to one connection before it counts as too slow (1013).",
    )
    awareness_timeout_s: int = setting(
        30, "Awareness states not renewed for this long are removed and the removal broadcast."
    )
    max_awareness_ids_per_connection: int = setting(
        8,
        "Awareness client ids one websocket may announce (a browser tab announces one); "
        "states for more ids are dropped.",
    )
    max_awareness_state_bytes: int = setting(
        8 * 1024, "Largest awareness state (its JSON) kept and passed on; bigger ones are dropped."
    )
    max_awareness_states_per_note: int = setting(
        1000,
        "Awareness states one note holds at once; past it new states are dropped, and a "
        "message with more entries than this closes its websocket with 1008.",
    )
    max_awareness_bytes_per_note: int = setting(
        512 * 1024,
        "Bytes of awareness state (JSON) one note holds at once, which bounds what a newcomer "
        "is sent on joining (under 1 MiB, the default frame limit of many websocket clients); "
        "past it new or bigger states are dropped.",
    )
    body_timeout_s: int = setting(
        30,
        "Time a client has to send a complete request body once its head is in; a slower "
        "body gets 408 and the connection is closed.",
    )
    max_http_connections_per_address: int = setting(
        50,
        "HTTP connections one client address may hold at once, kept-alive ones included (an "
        "upgraded websocket counts in COSCRIBE_MAX_CONNECTIONS_PER_ADDRESS instead); more get "
        "503 and are closed at once.",
    )
    auto_version_interval_s: int = setting(
        600, "While a note is edited, take an automatic version this often (0: never)."
    )
    compact_after_updates: int = setting(
        500, "Queue a compaction of a note once its update log holds this many rows."
    )
    compaction_cron: str = setting(
        "*/15 * * * *", "Built-in schedule: compact every note whose log passed the threshold."
    )
    retention_cron: str = setting(
        "30 3 * * *", "Built-in schedule: apply the retention policy (cron, server time zone UTC)."
    )
    worker_poll_s: int = setting(5, "How often the background worker looks for due jobs.")
    job_lease_s: int = setting(
        60, "A running job's lease; if its worker dies, the job is retried after this long."
    )
    ws_ping_interval_s: int = setting(
        20, "Websocket ping interval; a peer that does not answer in time is disconnected."
    )
    shutdown_timeout_s: int = setting(
        10, "On SIGTERM, how long to wait for connections to close and rooms to flush."
    )
    storage_wait_s: int = setting(
        5,
        "How long a REST write waits for storage before answering 503 with Retry-After (the "
        "edit is kept and stored later); also bounds every other wait for the database.",
    )
    storage_probe_s: int = setting(
        5, "How often the database is probed, so /health/ready sees an outage on an idle server."
    )

    @functools.cached_property
    def crdt_limits(self) -> Limits:
        """The limits every update is checked against before pycrdt reads it."""
        return Limits(
            any_depth=self.max_any_depth,
            type_depth=self.max_type_depth,
            count=self.max_update_entries,
            string_bytes=self.max_update_string_bytes,
            structs=self.max_update_structs,
        )

    # Parsed once: the websocket endpoint checks the origins on every connection.
    @functools.cached_property
    def origins(self) -> frozenset[str]:
        return _origins(self.allowed_origins)

    @functools.cached_property
    def cors(self) -> list[str]:
        return sorted(_origins(self.cors_origins))

    @functools.cached_property
    def awareness_limits(self) -> AwarenessLimits:
        return _awareness_limits(vars(self))

    @classmethod
    def fields(cls) -> list[dataclasses.Field[Any]]:
        return list(dataclasses.fields(cls))

    @staticmethod
    def env_name(name: str) -> str:
        return PREFIX + name.upper()


def _origins(raw: str) -> frozenset[str]:
    return frozenset(item.strip().rstrip("/") for item in raw.split(",") if item.strip())


def _awareness_limits(values: Mapping[str, Any]) -> AwarenessLimits:
    return AwarenessLimits(
        max_ids_per_owner=values["max_awareness_ids_per_connection"],
        max_state_bytes=values["max_awareness_state_bytes"],
        max_states=values["max_awareness_states_per_note"],
        max_bytes=values["max_awareness_bytes_per_note"],
    )


def _parse(name: str, kind: type, raw: str) -> Any:
    variable = Settings.env_name(name)
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(variable, f"expected a whole number, got {raw!r}") from None
    if kind is bool:
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(variable, f"expected true or false, got {raw!r}")
    return raw


def _check(values: dict[str, Any]) -> None:
    for name in (
        "flush_window_ms",
        "flush_retry_max_ms",
        "max_frame_bytes",
        "max_body_bytes",
        "max_update_bytes",
        "send_queue_frames",
        "send_queue_bytes",
        "awareness_timeout_s",
        "ws_ping_interval_s",
        "shutdown_timeout_s",
        "storage_wait_s",
        "storage_probe_s",
        "compact_after_updates",
        "worker_poll_s",
        "job_lease_s",
        "auth_recheck_s",
        "max_note_bytes",
        "max_connections_per_note",
        "max_connections_per_address",
        "max_updates_per_s",
        "update_burst",
        "handshake_timeout_s",
        "max_handshake_bytes",
        "max_awareness_ids_per_connection",
        "max_awareness_state_bytes",
        "max_awareness_states_per_note",
        "max_awareness_bytes_per_note",
        "body_timeout_s",
        "max_http_connections_per_address",
        "max_any_depth",
        "max_type_depth",
        "max_update_entries",
        "max_update_structs",
        "max_update_string_bytes",
    ):
        if values[name] <= 0:
            raise ConfigError(
                Settings.env_name(name), f"must be greater than 0, got {values[name]}"
            )
    # A newcomer is sent every awareness state of the note in one frame, into a send queue
    # that also holds the note's step1 and whatever is broadcast meanwhile.
    welcome = _awareness_limits(values).max_frame_bytes()
    if welcome > values["send_queue_bytes"] // 2:
        raise ConfigError(
            Settings.env_name("max_awareness_bytes_per_note"),
            f"a note's awareness states (up to {welcome} bytes with "
            f"{Settings.env_name('max_awareness_states_per_note')}="
            f"{values['max_awareness_states_per_note']}) must fit in half of "
            f"{Settings.env_name('send_queue_bytes')} ({values['send_queue_bytes']})",
        )
    if not values["auth"] and not is_loopback(values["host"]):
        raise ConfigError(
            Settings.env_name("auth"),
            f"auth can be off only when listening on loopback (127.0.0.1, ::1, localhost), "
            f"not on {values['host']!r}",
        )
    port = values["port"]
    if not 0 <= port <= 65535:
        raise ConfigError(Settings.env_name("port"), f"must be between 0 and 65535, got {port}")
    for name in ("compaction_cron", "retention_cron"):
        try:
            schedules.check_cron(values[name])
        except InvalidError as exc:
            raise ConfigError(Settings.env_name(name), str(exc)) from None
    if values["log_level"] not in LOG_LEVELS:
        raise ConfigError(
            Settings.env_name("log_level"),
            f"unknown level {values['log_level']!r} (expected one of {', '.join(LOG_LEVELS)})",
        )


def load_settings(
    env: Mapping[str, str] | None = None, **overrides: Any
) -> tuple[Settings, DatabaseConfig]:
    """Settings and the database from the environment; non-None overrides win."""
    env = os.environ if env is None else env
    types = {"str": str, "int": int, "bool": bool}
    values: dict[str, Any] = {}
    for f in Settings.fields():
        raw = env.get(Settings.env_name(f.name), "").strip()
        values[f.name] = _parse(f.name, types[str(f.type)], raw) if raw else f.default
    values.update({key: value for key, value in overrides.items() if value is not None})
    values["log_level"] = str(values["log_level"]).lower()
    _check(values)
    return Settings(**values), database_config_from_env(env)
