"""One Settings object read from the environment (prefix COSCRIBE_), every knob documented.

Each field's metadata carries its help line and its bounds; docs/configuration.md lists them
all and tests/test_docs.py keeps the two in step. Everything is parsed and checked once, at
start, so a typo stops start-up with one line naming the variable instead of failing a job
later. Command-line options of `coscribe serve` override the environment. The database is
chosen by persistence.config (which may not import the server) and carried here as well.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crdt.awareness import AwarenessLimits
from crdt.validation import Limits
from persistence import retention
from persistence.config import ConfigError, DatabaseConfig, database_config_from_env
from persistence.errors import InvalidError
from persistence.stores import schedules

from .auth import is_loopback

log = logging.getLogger("coscribe.settings")

PREFIX = "COSCRIBE_"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
LOG_FORMATS = ("text", "json")
# Variables that no longer do anything, and what to use instead: one warning each at start.
REMOVED = {
    "COSCRIBE_SEND_QUEUE_FRAMES": "COSCRIBE_SEND_QUEUE_BYTES alone bounds what a connection "
    "may leave unsent",
}


def setting(
    default: Any,
    help: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    deprecated: str | None = None,
) -> Any:
    """A field read from COSCRIBE_<NAME>: its default, its line of help for the docs, the
    bounds load_settings() enforces, and an old variable name still read (with a warning)."""
    metadata: dict[str, Any] = {"help": help}
    if minimum is not None:
        metadata["minimum"] = minimum
    if maximum is not None:
        metadata["maximum"] = maximum
    if deprecated is not None:
        metadata["deprecated"] = deprecated
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    host: str = setting("127.0.0.1", "Interface to listen on.")
    port: int = setting(
        8000, "TCP port to listen on (0 picks a free one).", minimum=0, maximum=65535
    )
    log_level: str = setting("info", "Log level: critical, error, warning, info or debug.")
    log_format: str = setting(
        "text",
        "Log lines on stderr: text, or json (one JSON object per line, uvicorn's lines too: "
        "time, level, logger, message, and where known note, connection and request_id).",
    )
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
        2,
        "How often live websockets' tokens and notes are checked again (revocation delay).",
        minimum=1,
    )
    create_missing_notes: bool = setting(
        True,
        "Create a note when a client that may write opens an unknown id (in its token's "
        "workspace, else the default one).",
    )
    flush_window_ms: int = setting(
        20,
        "Group commit window: updates arriving within it are stored in one transaction. A "
        "kill -9 can lose this much of the latest edits (of clients that do not reconnect).",
        minimum=1,
        maximum=60_000,
    )
    flush_retry_max_ms: int = setting(
        5000,
        "Longest wait between retries of a failed flush (the room stays dirty meanwhile).",
        minimum=1,
    )
    max_frame_bytes: int = setting(
        16 * 1024 * 1024,
        "Largest websocket frame accepted; bigger frames close with 1009.",
        minimum=1,
    )
    max_note_bytes: int = setting(
        64 * 1024 * 1024,
        "Largest a note may grow (its encoded state); an update past it is refused (1009/413).",
        minimum=1,
    )
    max_connections_per_note: int = setting(
        500,
        "Websockets one note accepts at once; more are closed with 1013.",
        minimum=1,
    )
    room_unload_grace_s: int = setting(
        30,
        "How long a note's room stays loaded after its last client left (0: unload at once), "
        "so a client that reconnects, or a REST edit, does not wait for a load from storage.",
        minimum=0,
        maximum=24 * 3600,
    )
    max_idle_rooms: int = setting(
        1000,
        "Rooms kept loaded with nobody connected, within that grace; past it the longest-idle "
        "are unloaded first. Each holds its note's document in memory (about its stored size "
        "times a few).",
        minimum=0,
    )
    max_connections_per_address: int = setting(
        200,
        "Websockets one client address may hold at once; more are closed with 1013.",
        minimum=1,
    )
    max_updates_per_s: int = setting(
        100,
        "Messages (updates, awareness, sync requests, any other) per second one websocket "
        "may send, on average; pings have a budget of their own of the same size.",
        minimum=1,
    )
    update_burst: int = setting(
        1000,
        "Messages a websocket may send at once above that rate; past it, close 1008.",
        minimum=1,
    )
    handshake_timeout_s: int = setting(
        10,
        "Time a client has to send a complete request head (HTTP or websocket upgrade).",
        minimum=1,
    )
    max_handshake_bytes: int = setting(
        16 * 1024,
        "Largest request head (request line and headers) accepted; bigger gets 431.",
        minimum=1,
    )
    max_body_bytes: int = setting(
        1024 * 1024,
        "Largest JSON request body accepted over REST; bigger ones get 413.",
        minimum=1,
    )
    max_update_bytes: int = setting(
        16 * 1024 * 1024,
        "Largest binary Yjs update accepted over REST; bigger ones get 413.",
        minimum=1,
    )
    max_any_depth: int = setting(
        100,
        "Deepest nesting of arrays and objects in one JSON-like value of an update (Y.Map and "
        "Y.Array values, embeds, formatting); deeper is refused (1007/400).",
        minimum=1,
    )
    max_type_depth: int = setting(
        100,
        "Deepest nesting of shared types (XML elements, maps, arrays inside each other) in a "
        "note, across all its updates; an update going deeper is refused (1007/400).",
        minimum=1,
    )
    max_update_entries: int = setting(
        4 * 1024 * 1024,
        "Largest count one update may announce (clients, structs, deletions, values, entries "
        "of an array or object); more is refused (1009/413).",
        minimum=1,
    )
    max_update_structs: int = setting(
        20_000,
        "Most structs one update from a client may hold (the whole 260k-edit automerge-paper "
        "document is 11k); more is refused (1009/413). yrs spends quadratic time on some "
        "shapes of many structs (20k: 0.35 s on the event loop).",
        minimum=1,
    )
    max_update_string_bytes: int = setting(
        16 * 1024 * 1024,
        "Longest string or byte array inside an update; longer is refused (1009/413).",
        minimum=1,
    )
    send_queue_bytes: int = setting(
        32 * 1024 * 1024,
        "Bytes written to one connection and not yet taken by its client (the socket's write "
        "buffer) before it counts as too slow: it is closed (1013) and the buffer dropped.",
        minimum=1,
    )
    awareness_timeout_s: int = setting(
        30,
        "Awareness states not renewed for this long are removed and the removal broadcast.",
        minimum=1,
    )
    max_awareness_ids_per_connection: int = setting(
        8,
        "Awareness client ids one websocket may announce (a browser tab announces one); "
        "states for more ids are dropped.",
        minimum=1,
    )
    max_awareness_state_bytes: int = setting(
        8 * 1024,
        "Largest awareness state (its JSON) kept and passed on; bigger ones are dropped.",
        minimum=1,
    )
    max_awareness_states_per_note: int = setting(
        1000,
        "Awareness states one note holds at once; past it new states are dropped, and a "
        "message with more entries than this closes its websocket with 1008.",
        minimum=1,
    )
    max_awareness_bytes_per_note: int = setting(
        512 * 1024,
        "Bytes of awareness state (JSON) one note holds at once, which bounds what a newcomer "
        "is sent on joining (under 1 MiB, the default frame limit of many websocket clients); "
        "past it new or bigger states are dropped.",
        minimum=1,
    )
    body_timeout_s: int = setting(
        30,
        "Time a client has to send a complete request body once its head is in; a slower "
        "body gets 408 and the connection is closed.",
        minimum=1,
    )
    max_http_connections_per_address: int = setting(
        50,
        "HTTP connections one client address may hold at once, kept-alive ones included (an "
        "upgraded websocket counts in COSCRIBE_MAX_CONNECTIONS_PER_ADDRESS instead); more get "
        "503 and are closed at once.",
        minimum=1,
    )
    auto_version_interval_s: int = setting(
        600, "While a note is edited, take an automatic version this often (0: never)."
    )
    compact_after_updates: int = setting(
        500,
        "Queue a compaction of a note once its update log holds this many rows.",
        minimum=1,
    )
    compaction_cron: str = setting(
        "*/15 * * * *", "Built-in schedule: compact every note whose log passed the threshold."
    )
    retention_cron: str = setting(
        "30 3 * * *", "Built-in schedule: apply the retention policy (cron, server time zone UTC)."
    )
    worker_poll_s: int = setting(
        5, "How often the background worker looks for due jobs.", minimum=1
    )
    job_lease_s: int = setting(
        60,
        "A running job's lease; if its worker dies, the job is retried after this long.",
        minimum=1,
    )
    ws_ping_interval_s: int = setting(
        20,
        "Websocket ping interval; a peer that does not answer in time is disconnected.",
        minimum=1,
    )
    version_retention_s: int = setting(
        retention.DEFAULT_VERSION_RETENTION_S,
        "Retention: versions older than this are removed, never a note's newest (0: keep forever).",
        minimum=0,
        maximum=retention.MAX_RETENTION_S,
        deprecated="COSCRIBE_VERSION_RETENTION_DEFAULT_SECONDS",
    )
    deleted_note_retention_s: int = setting(
        retention.DEFAULT_DELETED_NOTE_RETENTION_S,
        "Retention: notes deleted longer ago than this are purged for good (0: keep forever).",
        minimum=0,
        maximum=retention.MAX_RETENTION_S,
        deprecated="COSCRIBE_DELETED_NOTE_RETENTION_DEFAULT_SECONDS",
    )
    job_retention_s: int = setting(
        retention.DEFAULT_JOB_RETENTION_S,
        "Retention: finished background tasks older than this are removed (0: keep forever).",
        minimum=0,
        maximum=retention.MAX_RETENTION_S,
        deprecated="COSCRIBE_JOB_RETENTION_DEFAULT_SECONDS",
    )
    shutdown_timeout_s: int = setting(
        10,
        "On SIGTERM, how long to wait for connections to close and rooms to flush.",
        minimum=1,
    )
    storage_wait_s: int = setting(
        5,
        "How long a REST write waits for storage before answering 503 with Retry-After (the "
        "edit is kept and stored later); also bounds every other wait for the database.",
        minimum=1,
    )
    metrics_port: int = setting(
        0,
        "Also serve /metrics without a token on 127.0.0.1 at this port, for a scraper on the "
        "same machine (0: off; /metrics on the main port needs an admin token either way).",
        minimum=0,
        maximum=65535,
    )
    storage_probe_s: int = setting(
        5,
        "How often the database is probed, so /health/ready sees an outage on an idle server.",
        minimum=1,
    )
    search_index_delay_ms: int = setting(
        500,
        "A note is indexed, and its 'changed' event sent, this long after its stored edits "
        "pause (edits stored meanwhile ride along and start the wait again).",
        minimum=10,
        maximum=60_000,
    )
    search_index_max_delay_ms: int = setting(
        2000,
        "A note edited without a pause is still indexed, and its 'changed' event sent, this "
        "long after the first edit not indexed yet (at least the delay above).",
        minimum=10,
        maximum=600_000,
    )
    search_max_indexed_chars: int = setting(
        200_000,
        "Words past this many characters of a note's body are not indexed (bounds the index "
        "and the cost of indexing a huge note).",
        minimum=1000,
        maximum=10_000_000,
    )
    search_catchup_s: int = setting(
        60,
        "How often notes whose stored edits are ahead of the search index (edited by another "
        "instance, imported, stored just before a crash) are indexed; also done at start.",
        minimum=1,
    )
    event_retention_s: int = setting(
        7 * 24 * 3600,
        "The change feed's events are kept this long: a client may resume with Last-Event-ID "
        "within it (older ones get a 'resync' event). Removed by the retention job.",
        minimum=60,
        maximum=retention.MAX_RETENTION_S,
    )
    feed_poll_ms: int = setting(
        500,
        "How often the change feed reads new events from the database (events written by this "
        "process are sent at once; this bounds the delay for other instances' events).",
        minimum=10,
        maximum=60_000,
    )
    feed_keepalive_s: int = setting(
        15,
        "An idle change-feed stream sends a comment line this often (keeps proxies from closing "
        "it, and finds a gone client).",
        minimum=1,
    )
    webhook_timeout_s: int = setting(
        10,
        "A webhook delivery fails when the receiver has not connected, answered or sent a byte "
        "for this long.",
        minimum=1,
        maximum=300,
    )
    webhook_retry_ms: int = setting(
        10_000,
        "First wait before retrying a failed webhook delivery; it doubles with each attempt "
        "(at most an hour), until the webhook's max_attempts.",
        minimum=10,
        maximum=3_600_000,
    )

    redis_prefix: str = setting(
        "coscribe:",
        "Cluster (REDIS_URL set): every Redis key this server uses starts with this prefix.",
    )
    cluster_window_s: int = setting(
        60,
        "Cluster: how long a note's Redis stream keeps updates, for instances that open the "
        "note or reconnect meanwhile (also the stream's expiry once the note is quiet).",
        minimum=5,
        maximum=3600,
    )
    cluster_heartbeat_s: int = setting(
        5,
        "Cluster: how often an instance says it is alive; one silent for 3 beats is dead and "
        "the presence of its clients is removed everywhere.",
        minimum=1,
        maximum=60,
    )
    cluster_queue_bytes: int = setting(
        32 * 1024 * 1024,
        "Cluster: updates waiting to go to Redis past this many bytes are dropped (the note "
        "is re-synced with the other instances once Redis keeps up again).",
        minimum=1024 * 1024,
    )

    # Not read from a COSCRIBE_ variable of its own: load_settings() fills it in from
    # DATABASE_URL, COSCRIBE_DB_DRIVER, ... (persistence.config). None in a Settings built
    # by hand, for an app given its Database directly.
    database: DatabaseConfig | None = field(default=None, compare=False)
    # REDIS_URL (cluster mode), checked by persistence.config: it needs PostgreSQL.
    redis_url: str | None = field(default=None, compare=False, repr=False)

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

    @functools.cached_property
    def retention_policy(self) -> retention.RetentionPolicy:
        """The server-wide retention periods (workspaces may override them)."""
        return retention.RetentionPolicy(
            version_retention_s=self.version_retention_s,
            deleted_note_retention_s=self.deleted_note_retention_s,
            job_retention_s=self.job_retention_s,
        )

    @classmethod
    def fields(cls) -> list[dataclasses.Field[Any]]:
        """The fields read from the environment (every one but `database`)."""
        return [f for f in dataclasses.fields(cls) if "help" in f.metadata]

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


def _parse(variable: str, kind: type, raw: str) -> Any:
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


def _check_bounds(f: dataclasses.Field[Any], value: Any, variable: str) -> None:
    minimum, maximum = f.metadata.get("minimum"), f.metadata.get("maximum")
    if minimum is not None and value < minimum:
        raise ConfigError(variable, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(variable, f"must be at most {maximum}, got {value}")


def _check(values: dict[str, Any], variables: dict[str, str]) -> None:
    """Bounds from the fields' metadata, then the rules that span fields or need parsing.
    `variables` names where each value came from, so an error names what the operator set."""
    for f in Settings.fields():
        _check_bounds(f, values[f.name], variables[f.name])
    # A newcomer is sent every awareness state of the note in one frame, into a send queue
    # that also holds the note's step1 and whatever is broadcast meanwhile.
    welcome = _awareness_limits(values).max_frame_bytes()
    if welcome > values["send_queue_bytes"] // 2:
        raise ConfigError(
            variables["max_awareness_bytes_per_note"],
            f"a note's awareness states (up to {welcome} bytes with "
            f"{variables['max_awareness_states_per_note']}="
            f"{values['max_awareness_states_per_note']}) must fit in half of "
            f"{variables['send_queue_bytes']} ({values['send_queue_bytes']})",
        )
    if not values["auth"] and not is_loopback(values["host"]):
        raise ConfigError(
            variables["auth"],
            f"auth can be off only when listening on loopback (127.0.0.1, ::1, localhost), "
            f"not on {values['host']!r}",
        )
    for name in ("compaction_cron", "retention_cron"):
        try:
            schedules.check_cron(values[name])
        except InvalidError as exc:
            raise ConfigError(variables[name], str(exc)) from None
    if values["log_format"] not in LOG_FORMATS:
        raise ConfigError(
            variables["log_format"],
            f"unknown format {values['log_format']!r} (expected {' or '.join(LOG_FORMATS)})",
        )
    if values["log_level"] not in LOG_LEVELS:
        raise ConfigError(
            variables["log_level"],
            f"unknown level {values['log_level']!r} (expected one of {', '.join(LOG_LEVELS)})",
        )


def _read(env: Mapping[str, str], f: dataclasses.Field[Any]) -> tuple[str, str]:
    """(variable, raw value) for a field: its own variable, or its deprecated one. Both set
    is refused rather than guessed at."""
    variable = Settings.env_name(f.name)
    raw = env.get(variable, "").strip()
    old = f.metadata.get("deprecated")
    old_raw = env.get(old, "").strip() if old else ""
    if old and old_raw:
        if raw:
            raise ConfigError(old, f"is deprecated and {variable} is set too: keep only {variable}")
        return old, old_raw
    return variable, raw


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings and the database from the environment; non-None overrides win."""
    env = os.environ if env is None else env
    types = {"str": str, "int": int, "bool": bool}
    values: dict[str, Any] = {}
    variables: dict[str, str] = {}
    for f in Settings.fields():
        variable, raw = _read(env, f)
        variables[f.name] = variable
        values[f.name] = _parse(variable, types[str(f.type)], raw) if raw else f.default
    values.update({key: value for key, value in overrides.items() if value is not None})
    values["log_level"] = str(values["log_level"]).lower()
    values["log_format"] = str(values["log_format"]).lower()
    _check(values, variables)
    database = database_config_from_env(env)
    # Only once everything is valid, so a bad value is still the one line that stops start-up.
    for f in Settings.fields():
        if variables[f.name] != Settings.env_name(f.name):
            log.warning(
                "%s is deprecated: rename it %s (same value)",
                variables[f.name],
                Settings.env_name(f.name),
            )
    for variable, instead in REMOVED.items():
        if env.get(variable, "").strip():
            log.warning("%s no longer has an effect: %s", variable, instead)
    redis_url = env.get("REDIS_URL", "").strip() or None
    if redis_url is not None and not redis_url.startswith(REDIS_SCHEMES):
        raise ConfigError(
            "REDIS_URL", f"expected redis://, rediss:// or unix://, got {redis_url[:20]!r}"
        )
    return Settings(**values, database=database, redis_url=redis_url)


def current_names(env: Mapping[str, str]) -> dict[str, str]:
    """The environment with deprecated names replaced by the current ones: for a child
    process, which then reads the same values without warning about them again."""
    renamed = dict(env)
    for f in Settings.fields():
        old = f.metadata.get("deprecated")
        if old and renamed.get(old, "").strip():
            renamed[Settings.env_name(f.name)] = renamed.pop(old)
    return renamed
