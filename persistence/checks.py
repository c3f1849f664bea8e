"""Checks of what callers store: each takes what is checked ("agent name") and a value, and
returns the value to store or raises InvalidError with a message naming what was wrong.

Input is validated before any SQL runs (types, lengths that match schema.py, NUL characters
PostgreSQL refuses, integer ranges, JSON that both JSON and JSONB accept), so a driver error
is never how bad input is reported.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import limits, schema
from .errors import InvalidError
from .ids import is_id

Check = Callable[[str, Any], Any]

MAX_TEXT_CHARS = limits.TEXT_CHARS
MAX_JSON_CHARS = 1_000_000
MAX_JSON_DEPTH = 64
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _kind(value: Any) -> str:
    return type(value).__name__


def check_id(what: str, value: Any) -> str:
    if not is_id(value):
        raise InvalidError(
            f"invalid {what}: expected 1-{schema.ID_LENGTH} characters of A-Z a-z 0-9 _ -, "
            f"got {show(value)}"
        )
    return value


def _check_string(what: str, value: str) -> None:
    if "\x00" in value:
        raise InvalidError(f"invalid {what}: NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidError(f"invalid {what}: not valid Unicode (lone surrogate)") from None


def text(
    max_length: int = MAX_TEXT_CHARS,
    *,
    blank: bool = True,
    nullable: bool = False,
    pattern: re.Pattern[str] | None = None,
    hint: str = "",
) -> Check:
    """A string of at most ``max_length`` characters; ``blank=False`` refuses empty ones."""

    def check(what: str, value: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise InvalidError(f"invalid {what}: expected a string, got {_kind(value)}")
        _check_string(what, value)
        if len(value) > max_length:
            raise InvalidError(
                f"invalid {what}: at most {max_length} characters allowed, got {len(value)}"
            )
        if not blank and not value.strip():
            raise InvalidError(f"invalid {what}: must not be empty")
        if pattern is not None and not pattern.fullmatch(value):
            raise InvalidError(f"invalid {what}: {hint}, got {show(value)}")
        return value

    return check


def reference(*, nullable: bool = True) -> Check:
    """The id of another row (its existence is checked by Entity through ``refs``)."""

    def check(what: str, value: Any) -> Any:
        return None if value is None and nullable else check_id(what, value)

    return check


def choice(*allowed: str) -> Check:
    def check(what: str, value: Any) -> Any:
        if value not in allowed or not isinstance(value, str):
            raise InvalidError(
                f"invalid {what}: expected one of {', '.join(allowed)}, got {show(value)}"
            )
        return value

    return check


def integer(minimum: int = INT32_MIN, maximum: int = INT32_MAX) -> Check:
    def check(what: str, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidError(f"invalid {what}: expected an integer, got {_kind(value)}")
        if not minimum <= value <= maximum:
            raise InvalidError(f"invalid {what}: must be between {minimum} and {maximum}")
        return value

    return check


def number(what: str, value: Any, minimum: float, maximum: float) -> float:
    """A count of seconds and the like: an int or float within bounds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidError(f"invalid {what}: expected a number, got {_kind(value)}")
    if not minimum <= value <= maximum:  # also refuses NaN
        raise InvalidError(f"invalid {what}: must be between {minimum:g} and {maximum:g}")
    return value


def boolean() -> Check:
    def check(what: str, value: Any) -> Any:
        if not isinstance(value, bool):
            raise InvalidError(f"invalid {what}: expected true or false, got {_kind(value)}")
        return value

    return check


def timestamp(*, nullable: bool = False) -> Check:
    def check(what: str, value: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise InvalidError(
                f"invalid {what}: expected a timezone-aware datetime, got {show(value)}"
            )
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise InvalidError(f"invalid {what}: out of range") from None

    return check


def as_now(now: datetime | None) -> datetime:
    return utcnow() if now is None else timestamp()("now", now)


def _walk_json(what: str, value: Any, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise InvalidError(f"invalid {what}: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        _check_string(what, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidError(f"invalid {what}: object keys must be strings, got {_kind(key)}")
            _check_string(what, key)
            _walk_json(what, item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _walk_json(what, item, depth + 1)


def json_object(*, nullable: bool = False) -> Check:
    """A JSON object (dict). None stores ``{}`` unless the column is nullable.

    The value is returned as a JSON round-trip copy, so what a store returns equals what a
    later read returns (tuples become lists) and the caller's dict is never shared.
    """

    def check(what: str, value: Any) -> Any:
        if value is None:
            return None if nullable else {}
        if not isinstance(value, dict):
            raise InvalidError(f"invalid {what}: expected a JSON object (dict), got {_kind(value)}")
        _walk_json(what, value, 0)
        try:
            encoded = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidError(f"invalid {what}: not JSON-serializable ({exc})") from None
        if len(encoded) > MAX_JSON_CHARS:
            raise InvalidError(f"invalid {what}: larger than {MAX_JSON_CHARS} bytes as JSON")
        return json.loads(encoded)

    return check
