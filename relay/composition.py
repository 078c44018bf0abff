"""The composition root of a relay process: runtime, services, shutdown.

Strategy: ``relay.runtime`` opens the database and the storage (``open_runtime``);
this module is the one place that knows every service — SMTP, the API, the worker —
and imports them at the top like any other dependency: they take a ``Runtime`` from
the leaf ``relay.runtime`` and never import this module, so there is no cycle to
dodge. ``serve`` runs the services inside one nursery, each started with
``nursery.start`` so "ready" means every listener is bound, and stops them all on
SIGINT/SIGTERM.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from pathlib import Path

import attrs
import prometheus_client
import trio

from . import hashed_secrets, metrics, sampling
from . import logging as relay_logging
from .api import server as api_server
from .config import Config, parse_listen
from .logging import get_logger
from .reload import Reloader
from .runtime import Runtime, open_database, open_runtime
from .smtp import server as smtp_server
from .storage import Storage, host
from .worker import Worker, run_worker

# ``Runtime``, ``open_runtime`` and ``open_database`` live in the leaf ``relay.runtime``;
# they are named here too for callers that start from ``relay.composition``.
__all__ = [
    "SERVICES",
    "Runtime",
    "Started",
    "ensure_operator_key",
    "open_database",
    "open_runtime",
    "serve",
    "serve_metrics",
    "watch_signals",
]

log = get_logger("relay.app")


async def ensure_operator_key(storage: Storage) -> str | None:
    """Create an operator key when none is active; returns its secret (shown once)."""
    if await storage.admin_keys.count_active():
        return None
    key = hashed_secrets.new_key(hashed_secrets.OPERATOR_KEY_PREFIX)
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
    #: The ports SMTP bound, when SMTP runs.
    smtp: smtp_server.SmtpListeners | None = None
    #: The delivery worker, when it runs.
    worker: Worker | None = None
    #: The port the API bound, when the API runs.
    api: api_server.ApiListener | None = None
    #: Applies a re-read configuration to the running services (``relay.reload``).
    reloader: Reloader | None = None


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
            await _start_background(
                background, runtime, services, shutdown, reloader, handle_signals=handle_signals
            )
            async with trio.open_nursery() as front:
                started = await _start_services(
                    front, runtime, services, shutdown, reloader, reuse_port=reuse_port
                )
                log.info("relay ready", services=list(services), event_loop=host.running_loop_name())
                task_status.started(started)
                await shutdown.wait()
                # Bound the drain: SMTP has smtp.shutdown_timeout; the worker gets its
                # send timeout, after which its claims are released.
                front.cancel_scope.deadline = trio.current_time() + max(
                    config.smtp.shutdown_timeout, config.worker.send_timeout
                ) + 5
            background.cancel_scope.cancel()
    log.info("stopped")


async def _start_background(
    nursery: trio.Nursery,
    runtime: Runtime,
    services: tuple[str, ...],
    shutdown: trio.Event,
    reloader: Reloader,
    *,
    handle_signals: bool,
) -> None:
    """What runs beside the services and is cancelled after they drain: signals,
    SIGHUP reloads, the gauges' sampler and (without the API) the metrics endpoint."""
    config = runtime.config
    if handle_signals:
        nursery.start_soon(watch_signals, shutdown)
        await nursery.start(reloader.watch)
    await nursery.start(
        functools.partial(
            sampling.sample_forever, runtime.storage, queue="worker" in services,
            interval=config.metrics.sample_interval,
        )
    )
    if config.metrics.listen and "api" not in services:
        nursery.start_soon(serve_metrics, config.metrics.listen)


async def _start_services(
    nursery: trio.Nursery,
    runtime: Runtime,
    services: tuple[str, ...],
    shutdown: trio.Event,
    reloader: Reloader,
    *,
    reuse_port: bool,
) -> Started:
    """Start each of ``services`` and wait until it is ready (listening, or claiming);
    the worker's settings join the reloader."""
    smtp_bound: smtp_server.SmtpListeners | None = None
    api_bound: api_server.ApiListener | None = None
    worker: Worker | None = None
    if "smtp" in services:
        smtp_bound = await nursery.start(functools.partial(
            smtp_server.serve_smtp, runtime, shutdown, reuse_port=reuse_port,
            reloader=reloader,
        ))
    if "api" in services:
        api_bound = await nursery.start(functools.partial(
            api_server.serve_api, runtime, shutdown=shutdown, reuse_port=reuse_port,
            reloader=reloader,
        ))
    if "worker" in services:
        worker = running = await nursery.start(
            functools.partial(run_worker, runtime, stop=shutdown)
        )
        reloader.register("worker", lambda new: running.reload(new.worker))
        reloader.register("webhooks", lambda new: running.webhooks.reload(new.webhooks))
    return Started(
        runtime, shutdown, smtp=smtp_bound, worker=worker, api=api_bound, reloader=reloader,
    )
