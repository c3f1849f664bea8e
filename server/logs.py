"""Logging setup: text or JSON lines, context on every record, and no token in any log line.

y-websocket sends its token as a `?token=` query parameter, which uvicorn writes into its
"WebSocket /path?query" and access lines; the filter here blanks it before any handler sees it.

With COSCRIBE_LOG_FORMAT=json every record, coscribe's and uvicorn's alike, is one JSON object
on one line of stderr (python-json-logger): `time` (ISO 8601, UTC), `level`, `logger`,
`message`, and where known `note`, `connection` (the client's address and port) and
`request_id` (an HTTP request's, also sent back as `X-Request-ID`), from context variables the
websocket endpoint and the HTTP layer set for the task that serves them.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import uuid

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

_TOKEN = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)
# The loggers that write request lines (uvicorn's websocket lines go to uvicorn.error).
REQUEST_LOGGERS = ("uvicorn.access", "uvicorn.error")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Set by the task serving a websocket (server/ws.py) or an HTTP request (server/app.py).
NOTE: contextvars.ContextVar[str | None] = contextvars.ContextVar("note", default=None)
CONNECTION: contextvars.ContextVar[str | None] = contextvars.ContextVar("connection", default=None)
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_GIVEN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def redact(text: str) -> str:
    return _TOKEN.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token=" in record.msg.lower():
            record.msg = redact(record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        return True


class Context(logging.Filter):
    """Adds the note, connection and request id of the task that logs, where known."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in (
            ("note", NOTE),
            ("connection", CONNECTION),
            ("request_id", REQUEST_ID),
        ):
            value = variable.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


def request_id(given: str | None) -> str:
    """The request's id: the client's X-Request-ID when it is a sane one, else a new one."""
    if given and _GIVEN_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex[:16]


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        json_ensure_ascii=False,
        # uvicorn adds its message again with terminal colours: not for a log pipeline.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def configure(log_format: str, level: str) -> None:
    """The root handler on stderr, in the chosen format. Once per process, before anything
    logs: `coscribe serve` calls it first thing."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactTokens())
    handler.addFilter(Context())
    handler.setFormatter(
        json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def redact_request_logs() -> None:
    for name in REQUEST_LOGGERS:
        logging.getLogger(name).addFilter(RedactTokens())
