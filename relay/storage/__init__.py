"""The only part of relay that knows SQL: PostgreSQL through asyncpg, used from trio.

``open_storage(url)`` opens an asyncpg pool on the asyncio host loop that trio runs
as a guest of (``relay.storage.host.run``, the process's one entry point) and yields a
``Storage`` whose repositories are plain trio coroutines. Nothing outside this
package imports asyncpg or asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs
import trio

from .. import metrics
from ._bridge import Bridge, BridgeStatistics, Connection, run_plain
from .accounts import AccountRepository
from .admin_keys import AdminKeyRepository
from .batches import BatchStatistics, BatchWriter
from .delivery_logs import AttemptLog, DeliveryLogRepository
from .dkim_keys import DkimKeyRepository, SelectorTaken, TooManyDkimKeys
from .errors import Conflict, DatabaseUnavailable, InvalidReference, StorageError
from .ip_credentials import IpCredentialRepository, NetworkOverlap, TooManyCredentials
from .key_changes import KeyChanges
from .limit_counts import LimitCountRepository
from .messages import Change, Finish, MessageRepository
from .providers import ProviderRepository
from .query import Query
from .rules import RoutingRuleRepository
from .suppressions import Added, Bounce, SuppressionRepository
from .webhooks import DueDelivery, Settlement, WebhookRepository
from .worker_state import WorkerStateRepository

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "Added",
    "AttemptLog",
    "BatchStatistics",
    "BatchWriter",
    "Bounce",
    "BridgeStatistics",
    "Change",
    "Conflict",
    "DatabaseUnavailable",
    "DueDelivery",
    "Finish",
    "InvalidReference",
    "KeyChanges",
    "NetworkOverlap",
    "PoolHealth",
    "Query",
    "SelectorTaken",
    "Settlement",
    "Storage",
    "StorageError",
    "TooManyCredentials",
    "TooManyDkimKeys",
    "open_storage",
]


A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


@attrs.frozen
class PoolHealth:
    """A snapshot of the connection pool (``Storage.health()``)."""

    ok: bool
    size: int
    idle: int
    max_size: int
    #: Connections in use; when this equals ``max_size`` further callers wait.
    in_use: int
    #: Operations waiting for a connection at the moment of the snapshot.
    waiting: int = 0
    error: str | None = None


class Storage:
    """Repositories for every table, sharing one pool."""

    def __init__(self, bridge: Bridge, key_changes: KeyChanges) -> None:
        self._bridge = bridge
        #: Committed key rotations, revocations and account disables, heard through
        #: LISTEN/NOTIFY (started by the first user: the API's key cache).
        self.key_changes = key_changes
        self.accounts = AccountRepository(bridge, key_changes)
        self.admin_keys = AdminKeyRepository(bridge, key_changes)
        self.providers = ProviderRepository(bridge)
        self.rules = RoutingRuleRepository(bridge)
        self.ip_credentials = IpCredentialRepository(bridge, key_changes)
        self.dkim_keys = DkimKeyRepository(bridge)
        self.messages = MessageRepository(bridge)
        self.delivery_logs = DeliveryLogRepository(bridge)
        self.worker_state = WorkerStateRepository(bridge)
        self.limit_counts = LimitCountRepository(bridge)
        self.webhooks = WebhookRepository(bridge)
        self.suppressions = SuppressionRepository(bridge)

    @overload
    async def run(self, a: Query[A], /, *, transaction: bool = ..., snapshot: bool = ...) -> tuple[A]: ...
    @overload
    async def run(
        self, a: Query[A], b: Query[B], /, *, transaction: bool = ..., snapshot: bool = ...
    ) -> tuple[A, B]: ...
    @overload
    async def run(
        self, a: Query[A], b: Query[B], c: Query[C], /, *, transaction: bool = ..., snapshot: bool = ...
    ) -> tuple[A, B, C]: ...

    async def run(
        self, *queries: Query[Any], transaction: bool = False, snapshot: bool = False
    ) -> tuple[Any, ...]:
        """Run the queries in order on one connection, in one crossing.

        ``transaction=True``: they share one transaction (all or nothing for writes).
        ``snapshot=True``: reads only, in one read-only repeatable-read transaction, so
        they all see the database as of one moment. Either costs two more statements
        (BEGIN, COMMIT) on the same crossing.

        Raises:
            DatabaseUnavailable, Conflict, InvalidReference, StorageError: as any
                repository call; with a transaction, nothing of it was committed.
        """

        async def together(conn: Connection) -> tuple[Any, ...]:
            if snapshot:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    return tuple([await q.on_connection(conn) for q in queries])
            if transaction:
                async with conn.transaction():
                    return tuple([await q.on_connection(conn) for q in queries])
            return tuple([await q.on_connection(conn) for q in queries])

        operation = "+".join(metrics.operation_name(q.on_connection) for q in queries)
        return await self._bridge.run(together, operation=operation)

    def statistics(self) -> BridgeStatistics:
        """Crossings made so far (each is one asyncio task on the host loop)."""
        return self._bridge.statistics()

    def pool_statistics(self) -> PoolHealth:
        """The pool's figures now, without asking the database (for metrics)."""
        pool = self._bridge.pool
        size, idle = pool.get_size(), pool.get_idle_size()
        return PoolHealth(
            ok=True, size=size, idle=idle, max_size=pool.get_max_size(), in_use=size - idle,
            waiting=self._bridge.waiting,
        )

    async def ping(self) -> None:
        """Raises: DatabaseUnavailable: the database did not answer ``SELECT 1``."""

        async def select_one(conn: Connection) -> Any:
            return await conn.fetchval("SELECT 1")

        await self._bridge.run(select_one)

    async def health(self) -> PoolHealth:
        """Ping the database and report the pool's figures; never raises."""
        pool = self._bridge.pool
        error = None
        try:
            await self.ping()
        except StorageError as exc:
            error = str(exc)
        size, idle = pool.get_size(), pool.get_idle_size()
        return PoolHealth(
            ok=error is None,
            size=size,
            idle=idle,
            max_size=pool.get_max_size(),
            in_use=size - idle,
            waiting=self._bridge.waiting,
            error=error,
        )


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """Cheaper than asyncpg's default reset (a round trip on every release): we never
    LISTEN, SET or take advisory locks, so only an abandoned transaction needs undoing."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


@contextlib.asynccontextmanager
async def open_storage(
    url: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    connect_timeout: float = 10.0,
    acquire_timeout: float = 10.0,
    command_timeout: float = 30.0,
    statement_cache_size: int = 256,
) -> AsyncIterator[Storage]:
    """Open the pool for the duration of the block.

    ``acquire_timeout`` bounds the wait for a free pooled connection;
    ``statement_cache_size`` is asyncpg's per-connection prepared-statement cache.

    Raises:
        DatabaseUnavailable: the database cannot be reached at start.
        RuntimeError: trio is not running as the guest of an asyncio loop
            (``trio.run`` instead of ``relay.storage.host.run``).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "relay.storage needs trio running as a guest of an asyncio loop: "
            "start it with relay.storage.host.run, not trio.run"
        ) from None
    settings = _PoolSettings(
        min_size, max_size, connect_timeout, acquire_timeout, command_timeout,
        statement_cache_size,
    )
    async with _open_pool(loop, url, settings) as storage:
        yield storage


@attrs.frozen
class _PoolSettings:
    min_size: int
    max_size: int
    connect_timeout: float
    acquire_timeout: float
    command_timeout: float
    statement_cache_size: int


@contextlib.asynccontextmanager
async def _open_pool(
    loop: asyncio.AbstractEventLoop, url: str, settings: _PoolSettings
) -> AsyncIterator[Storage]:
    import asyncpg  # only here and in the repositories' asyncio side

    async def create() -> asyncpg.Pool:
        return await asyncpg.create_pool(
            url,
            min_size=settings.min_size,
            max_size=settings.max_size,
            timeout=settings.connect_timeout,
            command_timeout=settings.command_timeout,
            statement_cache_size=settings.statement_cache_size,
            init=_init_connection,
            reset=_reset_connection,
        )

    pool = await run_plain(loop, create)
    key_changes = KeyChanges(loop, url, settings.connect_timeout)
    try:
        yield Storage(Bridge(loop, pool, settings.acquire_timeout), key_changes)
    finally:
        # Bounded by the host loop's clock (asyncio.wait_for), which a trio MockClock
        # does not move; past it the remaining connections are dropped.
        async def close() -> None:
            await key_changes.aclose()
            try:
                await asyncio.wait_for(pool.close(), _POOL_CLOSE_TIMEOUT)
            except (TimeoutError, asyncio.CancelledError):
                pool.terminate()

        with trio.CancelScope(shield=True):
            await run_plain(loop, close)


#: Seconds ``pool.close()`` may take (waiting for released connections) before terminate.
_POOL_CLOSE_TIMEOUT = 5.0
