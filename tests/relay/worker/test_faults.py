"""The delivery fault boundary: one bad message never stops the queue.

Each test injects a real exception at one point (a provider driver, the attempt,
an account's routing, the database refusing one verdict) for one message only and
shows that this message is deferred or recorded with the error in its log while the
next ones are delivered by the same worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
import trio

from relay import models
from relay.models import DeliveryOutcome, MessageStatus
from relay.storage import Finish, Storage, StorageError
from relay.worker import attempt as attempt_module
from relay.worker.providers.sendgrid import SendGrid
from relay.worker.router import Router

from ..storage.helpers import make_account
from . import httpserver
from .conftest import running, statuses, wait_until, worker_config
from .test_worker import ACCEPTED, message, sendgrid, subjects, with_default

#: Generous: with structlog's default (test) renderer each logged traceback costs
#: seconds on a loaded machine.
PATIENCE = 60.0
#: One delivery at a time, in queue order, breakers that never open.
ONE_BY_ONE = worker_config(concurrency=1, batch_size=1, breaker_threshold=100)


async def enqueue_in_order(storage: Storage, account: models.Account, numbers: Sequence[int]) -> list[uuid.UUID]:
    ids = []
    for n in numbers:
        ids += await storage.messages.enqueue_many([message(account, n)])
    return ids


async def settled(storage: Storage, account: models.Account, **wanted: int) -> bool:
    counts = await statuses(storage, account)
    return all(counts[MessageStatus[name.upper()]] == n for name, n in wanted.items())


async def test_a_driver_that_raises_defers_that_message_and_the_next_is_delivered(
    storage: Storage, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await httpserver.start(nursery, answers=[ACCEPTED])
    account, _ = await with_default(storage, server)
    real = SendGrid.deliver

    async def deliver(self: SendGrid, envelope: object) -> object:
        if b"Subject: n1\r\n" in envelope.raw:  # type: ignore[attr-defined]
            raise RuntimeError("driver bug")
        return await real(self, envelope)  # type: ignore[arg-type]

    monkeypatch.setattr(SendGrid, "deliver", deliver)
    bad, *_ = await enqueue_in_order(storage, account, [1, 2, 3])
    async with running(storage, ONE_BY_ONE) as worker:
        await wait_until(lambda: settled(storage, account, sent=2, deferred=1), PATIENCE)
        # Results leave in_flight when the batched write returns, just after the commit seen above.
        await wait_until(lambda: worker.statistics().in_flight == 0, PATIENCE)
    assert sorted(subjects(server)) == ["n2", "n3"]
    deferred = await storage.messages.get(bad)
    assert deferred is not None and deferred.status is MessageStatus.DEFERRED
    assert deferred.last_error == "internal error in the sendgrid driver: RuntimeError: driver bug"
    [log] = await storage.delivery_logs.list_for_message(bad)
    assert log.outcome is DeliveryOutcome.DEFERRED and "RuntimeError: driver bug" in log.response


async def test_a_crash_outside_the_driver_defers_that_message_and_the_next_is_delivered(
    storage: Storage, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await httpserver.start(nursery, answers=[ACCEPTED])
    account, _ = await with_default(storage, server)
    real = attempt_module.choose

    def choose(routing: object, message: models.Message) -> object:
        if message.raw and b"Subject: n1\r\n" in message.raw:
            raise KeyError("routing bug")
        return real(routing, message)  # type: ignore[arg-type]

    monkeypatch.setattr(attempt_module, "choose", choose)
    bad, *_ = await enqueue_in_order(storage, account, [1, 2, 3])
    async with running(storage, ONE_BY_ONE):
        await wait_until(lambda: settled(storage, account, sent=2, deferred=1), PATIENCE)
    assert sorted(subjects(server)) == ["n2", "n3"]
    deferred = await storage.messages.get(bad)
    assert deferred is not None
    assert deferred.last_error == "internal error in the worker (KeyError: 'routing bug'); will retry"
    [log] = await storage.delivery_logs.list_for_message(bad)
    assert log.outcome is DeliveryOutcome.DEFERRED and log.response == deferred.last_error
    assert deferred.next_attempt_at > deferred.updated_at  # backoff, like any temporary failure


async def test_an_account_whose_routing_crashes_does_not_hold_back_other_accounts(
    storage: Storage, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await httpserver.start(nursery, answers=[ACCEPTED])
    good_account, _ = await with_default(storage, server)
    bad_account = await make_account(storage)
    provider = await sendgrid(storage, bad_account, server, "bad")
    await storage.accounts.update(bad_account.id, default_provider_id=provider.id)
    real = Router.routing

    async def routing(self: Router, account_id: uuid.UUID) -> object:
        if account_id == bad_account.id:
            raise ValueError("unreadable rule")
        return await real(self, account_id)

    monkeypatch.setattr(Router, "routing", routing)
    [bad] = await storage.messages.enqueue_many([message(bad_account, 1)])
    await storage.messages.enqueue_many([message(good_account, 2)])
    async with running(storage):  # both in one batch
        await wait_until(lambda: settled(storage, bad_account, deferred=1), PATIENCE)
        await wait_until(lambda: settled(storage, good_account, sent=1), PATIENCE)
    assert subjects(server) == ["n2"]
    [log] = await storage.delivery_logs.list_for_message(bad)
    assert log.response == "internal error in the worker (ValueError: unreadable rule); will retry"


async def test_a_result_the_database_refuses_is_recorded_plainly_and_the_others_are_written(
    storage: Storage, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await httpserver.start(nursery, answers=[ACCEPTED])
    account, _ = await with_default(storage, server)
    poison, *_ = ids = await storage.messages.enqueue_many([message(account, n) for n in range(3)])
    messages = storage.messages
    real = messages.finish

    async def finish(worker_id: str, results: Sequence[Finish]) -> list[bool]:
        if any(r.message_id == poison and "could not be recorded" not in (r.error or "") for r in results):
            raise StorageError("database error: 22021 CharacterNotInRepertoireError")
        return await real(worker_id, results)

    monkeypatch.setattr(messages, "finish", finish)
    async with running(storage) as worker:  # the three in one batch, likely one write
        await wait_until(lambda: settled(storage, account, sent=3), PATIENCE)
        # Counted when the batched write returns, just after the commit seen above.
        await wait_until(lambda: worker.statistics().sent == 3 and worker.statistics().in_flight == 0, PATIENCE)
    assert len(server.requests) == 3  # each delivered once: no retry of the poisoned one
    plain = await storage.messages.get(poison)
    assert plain is not None and plain.last_error == (
        "the result could not be recorded (StorageError: database error: 22021 "
        "CharacterNotInRepertoireError); status kept")
    [log] = await storage.delivery_logs.list_for_message(poison)
    assert (log.outcome, log.response) == (DeliveryOutcome.DELIVERED, plain.last_error)
    for other in ids[1:]:
        [log] = await storage.delivery_logs.list_for_message(other)
        assert (log.outcome, log.response) == (DeliveryOutcome.DELIVERED, "202 Accepted")


async def test_an_upstream_answer_with_a_nul_is_stored_and_the_queue_goes_on(
    storage: Storage, nursery: trio.Nursery
) -> None:
    # PostgreSQL text cannot hold NUL; before storage replaced it, the writer retried
    # this verdict forever and the worker stopped delivering.
    refusal = httpserver.Answer(400, {"errors": [{"message": "bad\u0000from"}]})
    server = await httpserver.start(nursery, answers=[refusal, ACCEPTED])
    account, _ = await with_default(storage, server)
    refused, *_ = await enqueue_in_order(storage, account, [1, 2])
    async with running(storage, ONE_BY_ONE):
        await wait_until(lambda: settled(storage, account, failed=1, sent=1), PATIENCE)
    failed = await storage.messages.get(refused)
    assert failed is not None and "bad\ufffdfrom" in (failed.last_error or "")
