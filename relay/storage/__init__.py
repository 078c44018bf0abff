"""The only part of relay that knows SQL: PostgreSQL through asyncpg, used from trio.

``open_storage(url)`` starts a trio-asyncio loop and an asyncpg pool and yields a
``Storage`` whose repositories are plain trio coroutines. Nothing outside this
package imports asyncpg or asyncio.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import attrs
import trio
import trio_asyncio

from ._bridge import Bridge
from .accounts import AccountRepository
from .admin_keys import AdminKeyRepository
from .delivery_logs import AttemptLog, DeliveryLogRepository
from .errors import Conflict, DatabaseUnavailable, InvalidReference, StorageError
from .messages import Change, Finish, MessageRepository
from .providers import ProviderRepository
from .rules import RoutingRuleRepository
from .worker_state import WorkerStateRepository

__all__ = [
    "AttemptLog",
    "Change",
    "Conflict",
    "DatabaseUnavailable",
    "Finish",
    "InvalidReference",
    "PoolHealth",
    "Storage",
    "StorageError",
    "open_storage",
]


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

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge
        self.accounts = AccountRepository(bridge)
        self.admin_keys = AdminKeyRepository(bridge)
        self.providers = ProviderRepository(bridge)
        self.rules = RoutingRuleRepository(bridge)
        self.messages = MessageRepository(bridge)
        self.delivery_logs = DeliveryLogRepository(bridge)
        self.worker_state = WorkerStateRepository(bridge)

    async def ping(self) -> None:
        """Raises: DatabaseUnavailable: the database did not answer ``SELECT 1``."""

        async def select_one(conn: Any) -> Any:
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


async def _reset_connection(conn: Any) -> None:
    """Cheaper than asyncpg's default reset (a round trip on every release): we never
    LISTEN, SET or take advisory locks, so only an abandoned transaction needs undoing."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def _init_connection(conn: Any) -> None:
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
    command_timeout: float = 30.0,
) -> AsyncIterator[Storage]:
    """Open the pool for the duration of the block.

    Raises:
        DatabaseUnavailable: the database cannot be reached at start.
    """
    try:
        async with _open_pool(
            url, min_size, max_size, connect_timeout, command_timeout
        ) as storage:
            yield storage
    except BaseExceptionGroup as group:
        # trio-asyncio runs the loop in internal nurseries, which wrap whatever the
        # caller's block raised; a lone exception is the caller's own, so unwrap it.
        leaf = _single_leaf(group)
        if leaf is None:
            raise
        raise leaf from None


def _single_leaf(group: BaseExceptionGroup) -> BaseException | None:  # type: ignore[type-arg]
    while isinstance(group, BaseExceptionGroup):
        if len(group.exceptions) != 1:
            return None
        group = group.exceptions[0]
    return group


@contextlib.asynccontextmanager
async def _open_pool(
    url: str, min_size: int, max_size: int, connect_timeout: float, command_timeout: float
) -> AsyncIterator[Storage]:
    import asyncpg  # only here and in the repositories' asyncio side

    async with trio_asyncio.open_loop() as loop:
        bridge_for_errors = Bridge(loop, None, connect_timeout)  # type: ignore[arg-type]

        async def create() -> Any:
            return await asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                timeout=connect_timeout,
                command_timeout=command_timeout,
                init=_init_connection,
                reset=_reset_connection,
            )

        pool = await bridge_for_errors.run_plain(create)
        try:
            yield Storage(Bridge(loop, pool, connect_timeout))
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(5) as scope:
                    await loop.run_aio_coroutine(pool.close())
                if scope.cancelled_caught:
                    pool.terminate()
