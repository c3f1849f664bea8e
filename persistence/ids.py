"""The one shape of an id (notes, workspaces, agents, tokens' scopes, ...).

The stores accept exactly these, the REST models validate against the same pattern, and the
websocket endpoint checks a note id with it before anything is looked up. Ids go into URL
paths unescaped, so the alphabet is kept to characters that never need escaping.
"""

from __future__ import annotations

import re

from .limits import ID_CHARS as ID_LENGTH

# For JSON Schema and pydantic, which search rather than match: hence the anchors.
PATTERN = rf"^[A-Za-z0-9_-]{{1,{ID_LENGTH}}}$"
DESCRIPTION = f"1-{ID_LENGTH} characters of A-Z a-z 0-9 _ -."

_ID = re.compile(PATTERN)


def is_id(value: object) -> bool:
    """True if ``value`` is a string of the id shape (a trailing newline is not)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None
