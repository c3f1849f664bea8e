"""Library errors. Drivers' exceptions never escape a store: they become one of these."""


class StoreError(Exception):
    """Base class of every error raised by the persistence layer."""


class NotFoundError(StoreError):
    """The row asked for does not exist (or is outside the caller's workspace)."""


class ConflictError(StoreError):
    """The write contradicts what is stored: a duplicate key, a cycle, a concurrent change."""


class InvalidError(StoreError):
    """The input is malformed: bad id, unknown field, value out of range, oversize payload."""


class SchemaError(StoreError):
    """The database schema is missing or not at the version this code expects."""
