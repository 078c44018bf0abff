"""Worker fixtures: an account, local upstreams, and a worker running against them."""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import trio

from relay import models
from relay.config import WorkerConfig
from relay.storage import Storage
from relay.worker import Worker, providers

#: Fast polling, short time limits; backoff long enough that a deferred message is
#: not retried within a test unless the test says so.
FAST = WorkerConfig(
    poll_interval=0.02, batch_size=8, concurrency=8, per_provider_concurrency=4,
    connect_timeout=1, send_timeout=1, lock_timeout=30, backoff_base=300, backoff_max=600,
    breaker_threshold=2, breaker_cooldown=60, max_attempts=3,
)


def worker_config(**changes: Any) -> WorkerConfig:
    import attrs

    return attrs.evolve(FAST, **changes)


@contextlib.asynccontextmanager
async def running(
    storage: Storage, config: WorkerConfig = FAST, *, close: bool = True, **kwargs: Any
) -> AsyncIterator[Worker]:
    """A worker delivering in the background for the block; cancelled and closed after."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(config.send_timeout, connect=config.connect_timeout)) as http:
        context = providers.Context(
            http=http, connect_timeout=config.connect_timeout, send_timeout=config.send_timeout,
            hostname="relay.test",
            smtp_pool=providers.SmtpPool(max_idle_per_key=config.per_provider_concurrency),
        )
        worker = Worker(storage, config, context, **kwargs)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(worker.run)
                yield worker
                nursery.cancel_scope.cancel()
        finally:
            if close:
                await worker.close()
                with trio.CancelScope(shield=True):
                    await context.smtp_pool.aclose()


async def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll the database until ``check()`` is truthy (real PostgreSQL: no clock to mock)."""
    with trio.fail_after(timeout):
        while True:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            await trio.sleep(0.02)


async def statuses(storage: Storage, account: models.Account) -> dict[models.MessageStatus, int]:
    return await storage.messages.count_by_status(account_id=account.id)


def utc(seconds: float = 0) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
