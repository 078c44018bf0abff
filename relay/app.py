"""The root of a relay process: database, migrations, storage, services, shutdown.

Strategy: ``open_database`` resolves where the data lives (the configured URL, or the
embedded PostgreSQL under ``var/``) and migrates it; ``open_runtime`` adds the
storage pool on top. ``serve`` runs the services inside one nursery, each started
with ``nursery.start`` so "ready" means every listener is bound, and stops them all
on SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import functools
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from . import auth, metrics, sampling
from . import logging as relay_logging
from .config import Config
from .logging import get_logger
from .reload import Reloader
from .storage import Storage, embedded, migrations, open_storage

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


async def ensure_operator_key(storage: Storage) -> str | None:
    """Create an operator key when none is active; returns its secret (shown once)."""
    if await storage.admin_keys.count_active():
        return None
    key = auth.new_key(auth.OPERATOR_KEY_PREFIX)
    await storage.admin_keys.create(name="bootstrap", key_hash=key.hash, key_prefix=key.prefix)
    return key.secret


async def watch_signals(shutdown: trio.Event) -> None:
    """Set ``shutdown`` on the first SIGINT or SIGTERM (a second one is not caught)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("shutting down", signal=signal.Signals(signum).name)
            shutdown.set()
            return


#: The services one process can run; ``relay serve`` runs them all.
SERVICES = ("smtp", "api", "worker")


async def serve_metrics(listen: str) -> None:
    """``GET /metrics`` on ``metrics.listen`` for a process without the API:
    prometheus-client's own small HTTP server, in its thread, until cancelled."""
    import prometheus_client

    from .config import parse_listen

    host, port = parse_listen(listen)
    registry = metrics.scrape_registry()
    server, _thread = prometheus_client.start_http_server(
        port, addr=host or "0.0.0.0", registry=registry
    )
    log.info("metrics listening", listen=f"{host}:{server.server_port}")
    try:
        await trio.sleep_forever()
    finally:
        server.shutdown()
        server.server_close()


@attrs.frozen
class Started:
    """What ``serve`` reports once every service is listening."""

    runtime: Runtime
    shutdown: trio.Event
    #: ``relay.smtp.server.Bound`` when SMTP runs.
    smtp: Any = None
    #: ``relay.worker.Worker`` when the worker runs.
    worker: Any = None
    #: ``relay.api.server.Bound`` when the API runs.
    api: Any = None
    #: Applies a re-read configuration to the running services (``relay.reload``).
    reloader: Any = None


async def serve(
    config: Config,
    *,
    services: tuple[str, ...] = SERVICES,
    announce: Callable[[str], None] | None = None,
    handle_signals: bool = True,
    reuse_port: bool = False,
    config_path: Path | None = None,
    task_status: trio.TaskStatus[Started] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the given services in this process until shutdown.

    Shutdown (SIGINT/SIGTERM, or ``Started.shutdown.set()``) lets SMTP drain —
    sessions inside DATA finish and are stored — and the worker finish its in-flight
    deliveries (it stops claiming at once), then cancels whatever is left.

    ``reuse_port``: this process is one of several sharing the listening ports
    (``relay.supervisor``). SIGHUP (with ``handle_signals``) re-reads ``config_path``
    and applies it live (``relay.reload``).
    """
    async with open_runtime(config) as runtime:
        secret = await ensure_operator_key(runtime.storage)
        if secret is not None and announce is not None:
            announce(secret)
        shutdown = trio.Event()
        reloader = Reloader(config, config_path)
        reloader.register("logging", lambda new: relay_logging.reconfigure(new.logging))
        async with trio.open_nursery() as background:
            if handle_signals:
                background.start_soon(watch_signals, shutdown)
                await background.start(reloader.watch)
            await background.start(
                functools.partial(
                    sampling.sample_forever, runtime.storage, queue="worker" in services,
                    interval=config.metrics.sample_interval,
                )
            )
            if config.metrics.listen and "api" not in services:
                background.start_soon(serve_metrics, config.metrics.listen)
            async with trio.open_nursery() as front:
                smtp_bound = worker = api_bound = None
                if "smtp" in services:
                    from .smtp.server import serve_smtp

                    smtp_bound = await front.start(functools.partial(
                        serve_smtp, runtime, shutdown, reuse_port=reuse_port, reloader=reloader
                    ))
                if "api" in services:
                    from .api.server import serve_api

                    api_bound = await front.start(functools.partial(
                        serve_api, runtime, shutdown=shutdown, reuse_port=reuse_port,
                        reloader=reloader,
                    ))
                if "worker" in services:
                    from .worker import run_worker

                    worker = await front.start(
                        functools.partial(run_worker, runtime, stop=shutdown)
                    )
                    reloader.register("worker", lambda new: worker.reload(new.worker))
                    reloader.register("webhooks", lambda new: worker.webhooks.reload(new.webhooks))
                log.info("relay ready", services=list(services))
                task_status.started(Started(
                    runtime, shutdown, smtp=smtp_bound, worker=worker, api=api_bound,
                    reloader=reloader,
                ))
                await shutdown.wait()
                # Bound the drain: SMTP has smtp.shutdown_timeout; the worker gets its
                # send timeout, after which its claims are released.
                front.cancel_scope.deadline = trio.current_time() + max(
                    config.smtp.shutdown_timeout, config.worker.send_timeout
                ) + 5
            background.cancel_scope.cancel()
    log.info("stopped")
