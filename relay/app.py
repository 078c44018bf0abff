"""The root of a relay process: database, migrations, storage, services, shutdown.

Strategy: ``open_database`` resolves where the data lives (the configured URL, or the
embedded PostgreSQL under ``var/``) and migrates it; ``open_runtime`` adds the
storage pool on top. ``serve`` runs the services inside one nursery, each started
with ``nursery.start`` so "ready" means every listener is bound, and stops them all
on SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
from typing import AsyncIterator, Callable

import attrs
import trio

from . import auth
from .config import Config
from .logging import get_logger
from .storage import Storage, StorageError, open_storage
from .storage import embedded, migrations

log = get_logger("relay.app")


@attrs.frozen
class Runtime:
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
    async with open_database(config, migrate=migrate) as url:
        async with open_storage(
            url,
            min_size=config.database.pool_min_size,
            max_size=config.database.pool_max_size,
            connect_timeout=config.database.connect_timeout,
            command_timeout=config.database.command_timeout,
        ) as storage:
            yield Runtime(config=config, database_url=url, storage=storage)


async def ensure_operator_key(storage: Storage) -> str | None:
    """Create an operator key when none is active; returns its secret (shown once)."""
    if await storage.admin_keys.count_active():
        return None
    key = auth.new_key(auth.OPERATOR_KEY_PREFIX)
    await storage.admin_keys.create(name="bootstrap", key_hash=key.hash, key_prefix=key.prefix)
    return key.secret


async def housekeeping(
    runtime: Runtime,
    *,
    interval: float = 60.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Return expired claims to the queue and delete finished messages past retention.

    Database outages are logged and retried next round; they never stop the process.
    """
    retention = dt.timedelta(days=runtime.config.worker.retention_days)
    task_status.started()
    while True:
        try:
            reclaimed = await runtime.storage.messages.reclaim_expired()
            purged = await runtime.storage.messages.purge_finished(retention)
            if reclaimed or purged:
                log.info("housekeeping", reclaimed=reclaimed, purged=purged)
        except StorageError as exc:
            log.warning("housekeeping failed", error=str(exc))
        await trio.sleep(interval)


async def wait_for_shutdown_signal() -> signal.Signals:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            return signal.Signals(signum)
    raise AssertionError("signal receiver ended")  # pragma: no cover


async def serve(
    config: Config,
    *,
    announce: Callable[[str], None] | None = None,
    task_status: trio.TaskStatus[Runtime] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run every service in this process until SIGINT/SIGTERM (or cancellation)."""
    async with open_runtime(config) as runtime:
        secret = await ensure_operator_key(runtime.storage)
        if secret is not None and announce is not None:
            announce(secret)
        async with trio.open_nursery() as nursery:
            await nursery.start(housekeeping, runtime)
            log.info("relay ready")
            task_status.started(runtime)
            received = await wait_for_shutdown_signal()
            log.info("shutting down", signal=received.name)
            nursery.cancel_scope.cancel()
    log.info("stopped")
