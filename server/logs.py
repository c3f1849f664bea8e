"""Logging setup: one format, and no token in any log line.

y-websocket sends its token as a `?token=` query parameter, which uvicorn writes into its
"WebSocket /path?query" and access lines; the filter here blanks it before any handler sees it.
"""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)
# The loggers that write request lines (uvicorn's websocket lines go to uvicorn.error).
REQUEST_LOGGERS = ("uvicorn.access", "uvicorn.error")


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


def redact_request_logs() -> None:
    for name in REQUEST_LOGGERS:
        logging.getLogger(name).addFilter(RedactTokens())
