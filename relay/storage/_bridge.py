"""The one crossing between trio and asyncio.

Strategy: asyncpg is asyncio-only, so a relay process runs asyncio as the host loop
and trio as its guest (``relay.storage.host``); every repository method is one
asyncio coroutine that takes a pooled connection and does *all* of its SQL (a whole
transaction, a batch insert) before returning. Crossing is one asyncio task per
logical operation, never one per statement.

Trio runs its ticks as callbacks of the host loop, on the host loop's own thread
(``tests/relay/storage/test_bridge.py`` checks it), so ``Bridge`` starts the asyncio
task with a plain ``loop.create_task``: no threadsafe call, and the task runs on the
host loop's next pass. Its completion comes back through
``TrioToken.run_sync_soon``, which is threadsafe and wakes trio when trio sits waiting
for I/O in its helper thread; the asyncio done-callback runs outside trio's tick, where
setting a ``trio.Event`` directly is unsupported and would not interrupt that wait.
Measured by ``bench/bridge_bench.py``: 3–4× the round trips per second of
trio-asyncio, 0.86× plain asyncio doing the same asyncio-side work.

On trio cancellation the asyncio task is cancelled and awaited (shielded, for at most
``CANCEL_GRACE`` seconds of the host loop's clock, which a trio ``MockClock`` does not
move) so its transaction is rolled back and its connection returned to the pool.

asyncpg's exceptions never leave this module: they become the storage errors below,
so callers handle "the database is unreachable" without importing asyncpg.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeAlias, TypeVar, TypeVarTuple

import asyncpg
import attrs
import trio

from .. import metrics
from .errors import Conflict, DatabaseUnavailable, InvalidReference, StorageError

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

#: A pooled connection: what the asyncio side of every repository method is handed.
Connection: TypeAlias = asyncpg.pool.PoolConnectionProxy
#: A result row (``conn.fetch``, ``conn.fetchrow``); ``relay.storage._rows`` maps it to a model.
Record: TypeAlias = asyncpg.Record

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


@attrs.frozen
class BridgeStatistics:
    #: Operations that went to the asyncio side with a pooled connection (``Bridge.run``).
    crossings: int
    #: Operations waiting for a free pooled connection right now.
    waiting: int


class Bridge:
    """Runs asyncio coroutines that use a pooled connection on the host loop, from trio."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, pool: asyncpg.Pool, acquire_timeout: float
    ) -> None:
        self._loop = loop
        self._pool = pool
        self._acquire_timeout = acquire_timeout
        #: Operations waiting for a free pooled connection right now.
        self.waiting = 0
        self._crossings = 0

    def statistics(self) -> BridgeStatistics:
        return BridgeStatistics(crossings=self._crossings, waiting=self.waiting)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def run(
        self, fn: Callable[[Connection, *Ts], Awaitable[T]], *args: *Ts, operation: str | None = None
    ) -> T:
        """Run ``fn(connection, *args)`` on the asyncio side with one pooled connection.

        Timed and counted in ``db_query_duration_seconds`` / ``db_errors_total`` under
        ``operation`` (default: ``fn``'s name in the code).

        Raises:
            DatabaseUnavailable: the database could not be reached or the connection broke.
            Conflict: a unique constraint refused the write.
            InvalidReference: a foreign key named a row that does not exist.
            StorageError: any other database error.

        On cancellation the asyncio task is cancelled and its transaction rolled back.
        """
        self._crossings += 1
        name = operation or metrics.operation_name(fn)
        started = time.perf_counter()
        try:
            return await run_plain(self._loop, functools.partial(self.with_connection, fn, *args))
        except StorageError:
            metrics.DB_ERRORS.labels(name).inc()
            raise
        finally:
            metrics.series(metrics.DB_QUERY_SECONDS, name).observe(time.perf_counter() - started)

    async def with_connection(self, fn: Callable[[Connection, *Ts], Awaitable[T]], *args: *Ts) -> T:
        """The asyncio side of ``run``, on the host loop: ``fn(connection, *args)``.

        The wait for a connection is bounded with ``asyncio.timeout`` rather than
        ``pool.acquire(timeout=)``, whose ``wait_for`` costs an extra asyncio task per
        call on Python 3.11; the release gets the same budget as before.
        """
        self.waiting += 1
        try:
            async with asyncio.timeout(self._acquire_timeout):
                conn = await self._pool.acquire()
        finally:
            self.waiting -= 1
        try:
            return await fn(conn, *args)
        except _UNAVAILABLE:
            # The connection broke (its backend was terminated, say): never hand it to
            # the next caller; the pool opens a fresh one when it is needed.
            conn.terminate()
            raise
        finally:
            await self._pool.release(conn, timeout=self._acquire_timeout)


async def run_plain(loop: asyncio.AbstractEventLoop, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an asyncio coroutine function on the host loop from trio, mapping database errors.

    Needs no pool: opening and closing one go through it too.

    Raises:
        DatabaseUnavailable, Conflict, InvalidReference, StorageError: as ``Bridge.run``.

    On cancellation the asyncio task is cancelled and awaited for up to
    ``CANCEL_GRACE`` seconds before the cancellation propagates.
    """
    task = await run_on_host(loop, fn)
    try:
        return task.result()
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(exc.constraint_name or "unique constraint") from None
    except asyncpg.ForeignKeyViolationError as exc:
        raise InvalidReference(exc.constraint_name or "foreign key") from None
    except _UNAVAILABLE as exc:
        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc
    except asyncio.CancelledError as exc:
        # Only the host loop shutting down cancels our tasks without us asking.
        raise DatabaseUnavailable("database unavailable: the host loop is stopping") from exc
    except asyncpg.PostgresError as exc:
        raise StorageError(f"database error: {exc.sqlstate} {type(exc).__name__}") from exc


#: Seconds a cancelled operation gets to finish (roll back, release its connection).
CANCEL_GRACE = 10.0


async def run_on_host(
    loop: asyncio.AbstractEventLoop, fn: Callable[[], Coroutine[Any, Any, T]]
) -> asyncio.Task[T]:
    """Run ``fn()`` as an asyncio task on ``loop`` (the host loop) and return the finished task.

    Must be called from trio running as the guest of ``loop``; ``fn`` is a coroutine
    function.

    On cancellation the task is cancelled and awaited, shielded, for at most
    ``CANCEL_GRACE`` seconds of host-loop time; then the cancellation propagates.
    """
    token = trio.lowlevel.current_trio_token()
    finished = trio.Event()

    def wake_trio(_: object = None) -> None:
        try:
            token.run_sync_soon(finished.set, idempotent=True)
        except trio.RunFinishedError:  # a task given up on, finishing after trio did
            pass

    # A direct call: this trio code is running inside a host-loop callback, on its thread.
    task = loop.create_task(fn())
    task.add_done_callback(wake_trio)
    try:
        await finished.wait()
    except BaseException:
        task.cancel()
        timer = loop.call_later(CANCEL_GRACE, wake_trio)
        try:
            with trio.CancelScope(shield=True):
                await finished.wait()
        finally:
            timer.cancel()
            task.remove_done_callback(wake_trio)
            # Given up on (past the grace) or failed while cancelled: nobody reads the
            # result, so asyncio must not log "exception was never retrieved".
            task.add_done_callback(_consume)
        raise
    return task


def _consume(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
