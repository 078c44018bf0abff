"""Queue housekeeping: return lapsed claims, delete finished messages past retention
(and suppression-list entries past their expiry).

Moved here from ``relay.composition`` because it is the worker's job: a message whose
worker died is usually taken over by another worker's next claim once its lease
lapses; ``reclaim_expired`` also puts lapsed ones back in the queue (as deferred,
with a log row) when no worker has room to claim, so the queue shows what happened.
Delivery is at-least-once: that worker may have delivered before dying.
``retention_days`` is a worker setting. Any number of processes may run it; both
statements are idempotent.
"""

from __future__ import annotations

import datetime as dt

import trio

from ..logging import get_logger
from ..storage import Storage, StorageError

log = get_logger("relay.worker.housekeeping")


async def housekeeping(
    storage: Storage,
    *,
    retention_days: float,
    interval: float,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one round now and one every ``interval`` seconds until cancelled.

    Database outages are logged and retried next round; they never stop the worker.
    """
    retention = dt.timedelta(days=retention_days)
    task_status.started()
    while True:
        await run_once(storage, retention)
        await trio.sleep(interval)


async def run_once(storage: Storage, retention: dt.timedelta) -> tuple[int, int]:
    """Returns (reclaimed, purged); (0, 0) when the database could not be reached."""
    try:
        reclaimed = await storage.messages.reclaim_expired()
        purged = await storage.messages.purge_finished(retention)
        # Settled webhook events (and their attempts) follow the same retention.
        purged += await storage.webhooks.purge(retention)
    except StorageError as exc:
        log.warning("housekeeping failed; retrying next round", error=str(exc))
        return 0, 0
    if reclaimed or purged:
        log.info("housekeeping", reclaimed=reclaimed, purged=purged)
    try:
        # Expired suppressions already count as absent; this only reclaims the rows.
        expired = await storage.suppressions.purge_expired()
    except StorageError as exc:
        log.warning("housekeeping could not purge expired suppressions; retrying next round",
                    error=str(exc))
    else:
        if expired:
            log.info("housekeeping", expired_suppressions=expired)
    return reclaimed, purged
