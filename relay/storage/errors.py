"""Storage errors: what callers may catch instead of asyncpg's exceptions."""

from __future__ import annotations


class StorageError(Exception):
    """A database operation failed; the message says which kind of failure."""


class DatabaseUnavailable(StorageError):
    """The database could not be reached; retry later (SMTP answers 451 4.3.0)."""


class Conflict(StorageError):
    """A unique constraint refused the write; ``str(exc)`` is the constraint's name."""


class InvalidReference(StorageError):
    """A foreign key named a row that does not exist."""
