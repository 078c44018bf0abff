"""Leases that follow the worker: renewed while it lives, taken over when it is gone.

A lease is measured by PostgreSQL's ``now()``, which no mock clock reaches, so these
tests use short real leases (0.6–2.5 s) and wait by polling the database under a
bounded deadline, never by a fixed sleep. Deliveries are held in flight by an HTTP
upstream that answers only when the test sets an event.
"""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg2
import pytest
import trio

from relay import models
from relay.models import DeliveryOutcome, MessageStatus
from relay.storage import Finish, Storage, open_storage

from . import httpserver
from .conftest import running, statuses, wait_until, worker_config
from .test_worker import message, with_default


def _sql(url: str, statement: str, *args: object) -> list[tuple]:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


async def sql(url: str, statement: str, *args: object) -> list[tuple]:
    return await trio.to_thread.run_sync(lambda: _sql(url, statement, *args))


async def database_time_past(url: str, moment: dt.datetime, timeout: float = 30.0) -> None:
    """Wait until PostgreSQL's clock (the one leases use) is past ``moment``."""
    with trio.fail_after(timeout):
        while not (await sql(url, "SELECT now() > %s", moment))[0][0]:
            await trio.sleep(0.1)


async def count(storage: Storage, account: models.Account, status: MessageStatus) -> int:
    return (await statuses(storage, account))[status]


def held_upstream(release: trio.Event) -> httpserver.Answer:
    """An upstream that accepts, but only once ``release`` is set."""
    return httpserver.Answer(202, b"", release=release)


#: Deliveries held open far longer than any lease here.
SLOW = {"send_timeout": 60, "connect_timeout": 30}


async def test_renewal_keeps_a_long_delivery_s_lease_past_the_lease_time(
    storage: Storage, database_url: str, nursery: trio.Nursery
) -> None:
    lease = 2.5  # renewed every 0.83 s: a stall of 1.6 s still passes
    release = trio.Event()
    server = await httpserver.start(nursery, answers=[held_upstream(release)])
    account, _ = await with_default(storage, server)
    [mid] = await storage.messages.enqueue_many([message(account, 1)])
    async with running(storage, worker_config(lock_timeout=lease, **SLOW), worker_id="slow") as slow:
        await wait_until(lambda: len(server.requests) == 1)
        first = await storage.messages.get(mid)
        assert first is not None and first.locked_until is not None
        # Another worker polls all along: it would take the message the moment the
        # lease lapsed.
        async with (
            open_storage(database_url, min_size=1, max_size=2) as other_storage,
            running(other_storage, worker_config(poll_interval=0.05), worker_id="eager") as eager,
        ):
            await database_time_past(database_url, first.locked_until + dt.timedelta(seconds=0.5))
            held = await storage.messages.get(mid)
            assert held is not None and held.status is MessageStatus.SENDING
            assert held.locked_by == "slow" and held.attempts == 1
            assert held.locked_until is not None and held.locked_until > first.locked_until
            assert eager.statistics().in_flight == 0
        release.set()
        await wait_until(lambda: count(storage, account, MessageStatus.SENT))
        await wait_until(lambda: slow.statistics().in_flight == 0)  # its write has returned
        assert slow.statistics().leases_lost == 0
    assert len(server.requests) == 1
    [log] = await storage.delivery_logs.list_for_message(mid)
    assert log.outcome is DeliveryOutcome.DELIVERED


async def test_a_lease_taken_by_another_worker_is_abandoned_and_not_overwritten(
    storage: Storage, database_url: str, nursery: trio.Nursery
) -> None:
    release = trio.Event()
    server = await httpserver.start(nursery, answers=[held_upstream(release)])
    account, _ = await with_default(storage, server)
    [mid] = await storage.messages.enqueue_many([message(account, 1)])
    async with running(storage, worker_config(lock_timeout=1.5, **SLOW), worker_id="zombie") as zombie:
        await wait_until(lambda: len(server.requests) == 1)
        # Another worker took the message over (the zombie was cut off too long).
        await sql(database_url, """UPDATE messages SET locked_by = 'other', attempts = attempts + 1,
                                       locked_until = now() + interval '60 seconds'
                                   WHERE id = %s""", str(mid))
        # The next renewal finds it gone and abandons the delivery.
        await wait_until(lambda: zombie.statistics().leases_lost == 1 and zombie.statistics().in_flight == 0)
        release.set()  # the upstream answers now: nobody is listening
        taken = await storage.messages.get(mid)
        assert taken is not None and taken.status is MessageStatus.SENDING
        assert (taken.locked_by, taken.attempts) == ("other", 2)
        assert zombie.statistics().sent == 0
    assert await storage.delivery_logs.list_for_message(mid) == []  # nothing of the zombie's
    assert await storage.messages.finish("other", [Finish(mid, MessageStatus.SENT, attempt=2)]) == [True]


async def test_a_result_reached_after_the_lease_was_lost_is_not_written(
    storage: Storage, database_url: str, nursery: trio.Nursery
) -> None:
    release = trio.Event()
    server = await httpserver.start(nursery, answers=[held_upstream(release)])
    account, _ = await with_default(storage, server)
    [mid] = await storage.messages.enqueue_many([message(account, 1)])
    # A 30 s lease: no renewal runs during the test, so the result meets the loss first.
    async with running(storage, worker_config(**SLOW), worker_id="zombie") as zombie:
        await wait_until(lambda: len(server.requests) == 1)
        await sql(database_url, "UPDATE messages SET locked_until = now() - interval '1 second' WHERE id = %s",
                  str(mid))
        [taken] = await storage.messages.claim(worker_id="other", limit=1, lock_seconds=60)
        assert taken.id == mid and taken.attempts == 2
        release.set()
        await wait_until(lambda: zombie.statistics().leases_lost == 1 and zombie.statistics().in_flight == 0)
        assert zombie.statistics().sent == 0
    row = await storage.messages.get(mid)
    assert row is not None and row.status is MessageStatus.SENDING
    assert (row.locked_by, row.attempts) == ("other", 2)
    logs = await storage.delivery_logs.list_for_message(mid)
    # The takeover is in the history, and so is what the zombie saw; its verdict is not.
    assert [(log.outcome, log.response) for log in logs] == [
        (DeliveryOutcome.DEFERRED, "lease of worker zombie lapsed without a result; delivering again"),
        (DeliveryOutcome.DELIVERED, "202 Accepted"),
    ]


async def test_renewal_and_claiming_survive_a_crash(
    storage: Storage, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = trio.Event()
    server = await httpserver.start(nursery, answers=[held_upstream(release)])
    account, _ = await with_default(storage, server)
    [mid] = await storage.messages.enqueue_many([message(account, 1)])
    messages = storage.messages
    calls = {"claim": 0, "renew": 0}
    real_claim, real_renew = messages.claim, messages.renew

    async def claim(**kwargs: object) -> list[models.Message]:
        calls["claim"] += 1
        if calls["claim"] == 1:
            raise RuntimeError("claim bug")
        return await real_claim(**kwargs)  # type: ignore[arg-type]

    async def renew(worker_id: str, ids: list[uuid.UUID], seconds: float) -> set[uuid.UUID]:
        calls["renew"] += 1
        if calls["renew"] == 1:
            raise RuntimeError("renewal bug")
        return await real_renew(worker_id, ids, seconds)

    monkeypatch.setattr(messages, "claim", claim)
    monkeypatch.setattr(messages, "renew", renew)
    async with running(storage, worker_config(lock_timeout=0.6, **SLOW)) as worker:
        # Generous: each logged traceback costs seconds on a loaded machine.
        await wait_until(lambda: len(server.requests) == 1, 60)
        await wait_until(lambda: calls["renew"] >= 3, 60)
        held = await storage.messages.get(mid)
        assert held is not None and held.locked_by == worker.worker_id
        release.set()
        await wait_until(lambda: count(storage, account, MessageStatus.SENT), 60)
        await wait_until(lambda: worker.statistics().in_flight == 0, 60)  # its write has returned
        assert worker.statistics().leases_lost == 0
    assert calls["claim"] >= 2
