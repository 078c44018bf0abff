"""Levels for the metrics, sampled on a timer rather than per scrape.

Pool figures come from memory; the queue's depth and oldest message take one
statement, made only by processes that run the delivery worker (one per worker
process, not one per scrape per process); the certificate's expiry is read from
its file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import trio

from . import metrics
from .logging import get_logger
from .storage import Storage, StorageError

log = get_logger("relay.sampling")

#: Seconds between two samples.
INTERVAL = 15.0


def sample_pool(storage: Storage) -> None:
    pool = storage.pool_statistics()
    metrics.DB_ACTIVE.set(pool.in_use)
    metrics.DB_IDLE.set(pool.idle)
    metrics.DB_MAX.set(pool.max_size)
    metrics.DB_WAITING.set(pool.waiting)


async def sample_queue(storage: Storage) -> None:
    try:
        summary = await storage.messages.queue_summary()
    except StorageError as exc:
        log.warning("queue not sampled", error=str(exc))
        return
    for status, count in summary.by_status.items():
        metrics.QUEUE_DEPTH.labels(str(status)).set(count)
    metrics.QUEUE_OLDEST_AGE.set(summary.oldest_waiting_seconds)


def sample_certificate(cert_file: Path) -> None:
    """``tls_cert_expiry_days`` from the PEM file (left unchanged if it cannot be read)."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        log.warning("certificate not sampled", cert_file=str(cert_file), error=str(exc))
        return
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    metrics.TLS_EXPIRY_DAYS.set(left.total_seconds() / 86400)


async def sample_forever(
    storage: Storage, *, queue: bool, interval: float = INTERVAL,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Sample until cancelled; the first sample is taken before ``started``."""
    while True:
        sample_pool(storage)
        if queue:
            await sample_queue(storage)
        task_status.started()
        task_status = trio.TASK_STATUS_IGNORED
        await trio.sleep(interval)
