"""What every service receives: the configuration and the storage, over one database.

Strategy: this module is a leaf of the service graph — it imports the configuration,
storage and logging, never a service — so ``relay.smtp``, ``relay.api`` and
``relay.worker`` can take a ``Runtime`` while ``relay.composition``, the composition root,
imports them all without a cycle. ``open_database`` resolves where the data lives
(the configured URL, or the embedded PostgreSQL under ``var/``) and migrates it;
``open_runtime`` adds the storage pool on top.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import attrs
import trio

from .config import Config
from .logging import get_logger
from .storage import Storage, embedded, migrations, open_storage

#: Named as before the move, so the log lines read as they did.
log = get_logger("relay.app")


@attrs.frozen
class Runtime:
    """One process's configuration and storage, shared by the services it runs.

    ``database_url`` is the resolved URL (the embedded server's when none is
    configured); it may carry a password, so it is kept out of ``repr``.
    """

    config: Config
    database_url: str = attrs.field(repr=False)
    storage: Storage


@contextlib.asynccontextmanager
async def open_database(config: Config, *, migrate: bool | None = None) -> AsyncIterator[str]:
    """Yield a database URL, starting the embedded server when none is configured.

    Raises:
        DatabaseUnavailable: the database cannot be reached or started.
    """
    server = None
    url = config.database.url
    if not url:
        data_dir = config.resolve_path(config.database.embedded_dir)
        server = await trio.to_thread.run_sync(embedded.start, data_dir)
        url = server.url
        log.info("embedded database started", data_dir=str(data_dir))
    try:
        if config.database.migrate_on_start if migrate is None else migrate:
            applied = await trio.to_thread.run_sync(migrations.apply, url)
            if applied:
                log.info("migrations applied", migrations=applied)
        yield url
    finally:
        if server is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(server.stop)


@contextlib.asynccontextmanager
async def open_runtime(config: Config, *, migrate: bool | None = None) -> AsyncIterator[Runtime]:
    """``open_database`` plus a storage pool sized by ``database.*``; closed on exit.

    Raises:
        DatabaseUnavailable: the database cannot be reached or started.
    """
    async with open_database(config, migrate=migrate) as url, open_storage(
        url,
        min_size=config.database.pool_min_size,
        max_size=config.database.pool_max_size,
        connect_timeout=config.database.connect_timeout,
        acquire_timeout=config.database.acquire_timeout,
        command_timeout=config.database.command_timeout,
        statement_cache_size=config.database.statement_cache_size,
    ) as storage:
        yield Runtime(config=config, database_url=url, storage=storage)
