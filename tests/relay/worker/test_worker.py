"""The worker on a real PostgreSQL against local HTTP upstreams."""

from __future__ import annotations

import datetime as dt
import functools
import uuid

import pytest
import trio

from relay import models
from relay.models import DeliveryOutcome, MessageStatus, ProviderType
from relay.storage import Storage, open_storage
from relay.storage.worker_state import HealthState
from relay.worker import attempt as attempt_module
from relay.worker.router import Route

from ..storage.helpers import make_account
from . import httpserver
from .conftest import running, statuses, wait_until, worker_config
from .helpers import RCPT

ACCEPTED = httpserver.Answer(202, b"")


def message(account: models.Account, n: int, rcpt: tuple[str, ...] = RCPT, raw: bytes | None = None) -> models.NewMessage:
    body = raw or (
        b"From: alice@example.com\r\nTo: bob@example.net\r\nCc: carol@example.org\r\n"
        b"Subject: n%d\r\nMessage-ID: <%d@test>\r\n\r\nhello\r\n" % (n, n)
    )
    return models.NewMessage(account_id=account.id, mail_from="bounces@example.com", rcpt_to=rcpt, raw=body)


async def sendgrid(storage: Storage, account: models.Account, server: httpserver.HttpServer, name: str) -> models.Provider:
    return await storage.providers.create(
        account_id=account.id, name=name, type=ProviderType.SENDGRID,
        config={"api_key": f"key-{name}", "base_url": server.url},
    )


async def with_default(storage: Storage, server: httpserver.HttpServer) -> tuple[models.Account, models.Provider]:
    account = await make_account(storage)
    provider = await sendgrid(storage, account, server, "primary")
    await storage.accounts.update(account.id, default_provider_id=provider.id)
    return account, provider


def subjects(server: httpserver.HttpServer) -> list[str]:
    return [r.json()["subject"] for r in server.requests]


async def test_default_provider_delivers_and_logs_each_attempt(storage: Storage, nursery: trio.Nursery) -> None:
    server = await httpserver.start(nursery, answers=[ACCEPTED])
    account, provider = await with_default(storage, server)
    ids = await storage.messages.enqueue_many([message(account, n) for n in range(5)])
    async with running(storage) as worker:
        await wait_until(lambda: _all(storage, account, MessageStatus.SENT, 5))
        # Counted when the batched write returns, just after the commit seen above.
        await wait_until(lambda: worker.statistics().sent == 5)
    assert sorted(subjects(server)) == [f"n{n}" for n in range(5)]
    logs = await storage.delivery_logs.list_for_message(ids[0])
    assert [(l.outcome, l.provider_id, l.provider_type) for l in logs] == [
        (DeliveryOutcome.DELIVERED, provider.id, "sendgrid")]
    assert logs[0].response == "202 Accepted"
    sent = await storage.messages.get(ids[0])
    assert sent is not None and sent.attempts == 1 and sent.last_error is None


async def _all(storage: Storage, account: models.Account, status: MessageStatus, n: int) -> bool:
    return (await statuses(storage, account))[status] == n


async def test_no_rule_and_no_default_fails_with_a_reason(storage: Storage) -> None:
    account = await make_account(storage)
    [mid] = await storage.messages.enqueue_many([message(account, 1)])
    async with running(storage):
        await wait_until(lambda: _all(storage, account, MessageStatus.FAILED, 1))
    failed = await storage.messages.get(mid)
    assert failed is not None and "no route" in (failed.last_error or "")
    [log] = await storage.delivery_logs.list_for_message(mid)
    assert log.outcome is DeliveryOutcome.FAILED and log.provider_id is None
    assert "set the account's default_provider_id" in log.response


async def test_temporary_failure_is_deferred_with_backoff(storage: Storage, nursery: trio.Nursery) -> None:
    server = await httpserver.start(nursery, answers=[httpserver.Answer(503, b"try later")])
    account, _ = await with_default(storage, server)
    [mid] = await storage.messages.enqueue_many([message(account, 1)])
    async with running(storage):
        await wait_until(lambda: _all(storage, account, MessageStatus.DEFERRED, 1))
    deferred = await storage.messages.get(mid)
    assert deferred is not None and deferred.attempts == 1
    assert deferred.last_error == "503 Service Unavailable: try later"
    delay = (deferred.next_attempt_at - deferred.updated_at).total_seconds()
    assert 150 - 1 <= delay <= 300 + 1  # backoff_base 300, equal jitter: [150, 300]
    [log] = await storage.delivery_logs.list_for_message(mid)
    assert log.outcome is DeliveryOutcome.DEFERRED and log.duration_ms >= 0


async def test_permanent_failure_fails_at_once(storage: Storage, nursery: trio.Nursery) -> None:
    server = await httpserver.start(nursery, answers=[httpserver.Answer(400, {"errors": [{"message": "bad from"}]})])
    account, _ = await with_default(storage, server)
    [mid] = await storage.messages.enqueue_many([message(account, 1)])
    async with running(storage):
        await wait_until(lambda: _all(storage, account, MessageStatus.FAILED, 1))
    failed = await storage.messages.get(mid)
    assert failed is not None and "bad from" in (failed.last_error or "")


async def test_out_of_attempts_fails(storage: Storage, nursery: trio.Nursery) -> None:
    server = await httpserver.start(nursery, answers=[httpserver.Answer(503, b"down")])
    account, _ = await with_default(storage, server)
    [mid] = await storage.messages.enqueue_many([message(account, 1)])
    # backoff of ~0s so each retry is due at once; max_attempts 3.
    config = worker_config(backoff_base=0.001, backoff_max=0.001, breaker_threshold=100)
    async with running(storage, config):
        await wait_until(lambda: _all(storage, account, MessageStatus.FAILED, 1))
    failed = await storage.messages.get(mid)
    assert failed is not None and failed.attempts == 3
    assert "gave up after 3 attempts" in (failed.last_error or "") and "down" in (failed.last_error or "")
    logs = await storage.delivery_logs.list_for_message(mid)
    assert [l.outcome for l in logs] == [DeliveryOutcome.DEFERRED] * 3 + [DeliveryOutcome.FAILED]


@pytest.fixture
def two_providers_route(monkeypatch: pytest.MonkeyPatch) -> list[tuple[uuid.UUID, ...]]:
    """Route every message to the providers listed here (routing itself is tested apart)."""
    order: list[tuple[uuid.UUID, ...]] = []
    monkeypatch.setattr(attempt_module, "choose", lambda routing, message: Route(order[0], "test route"))
    return order


async def test_failover_to_the_next_provider_then_breaker_opens_and_closes(
    storage: Storage, nursery: trio.Nursery, two_providers_route: list[tuple[uuid.UUID, ...]]
) -> None:
    down = await httpserver.start(nursery, answers=[httpserver.Answer(503, b"maintenance")])
    up = await httpserver.start(nursery, answers=[ACCEPTED])
    account = await make_account(storage)
    primary = await sendgrid(storage, account, down, "primary")
    secondary = await sendgrid(storage, account, up, "secondary")
    two_providers_route.append((primary.id, secondary.id))
    clock = [attempt_module.utc_now()]
    config = worker_config(concurrency=1, batch_size=1, breaker_threshold=2)
    async with running(storage, config, now=lambda: clock[0]):
        ids = []
        for n in range(4):
            ids += await storage.messages.enqueue_many([message(account, n)])
            await wait_until(functools.partial(_all, storage, account, MessageStatus.SENT, n + 1))
        # Two failures at the primary opened its circuit: the last two skipped it.
        assert len(down.requests) == 2 and len(up.requests) == 4
        health = await wait_until(lambda: storage.worker_state.health(account_id=account.id))
        assert [(h.provider_id, h.state) for h in health] == [(primary.id, HealthState.OPEN)]
        assert health[0].last_error == "503 Service Unavailable: maintenance"
        first = await storage.delivery_logs.list_for_message(ids[0])
        assert [(l.provider_id, l.outcome) for l in first] == [
            (primary.id, DeliveryOutcome.DEFERRED), (secondary.id, DeliveryOutcome.DELIVERED)]
        last = await storage.delivery_logs.list_for_message(ids[3])
        assert last[0].provider_id == primary.id and last[0].duration_ms == 0
        assert last[0].response.startswith("skipped: circuit open after 2 consecutive failures")
        # After the cool-off the next message probes the primary, which has recovered.
        down.answers[:] = [ACCEPTED]
        clock[0] = clock[0] + dt.timedelta(seconds=61)
        await storage.messages.enqueue_many([message(account, 9)])
        await wait_until(lambda: _all(storage, account, MessageStatus.SENT, 5))
        assert len(down.requests) == 3
        health = await wait_until(lambda: _closed(storage, account))
        assert health[0].consecutive_failures == 0


async def _closed(storage: Storage, account: models.Account) -> list:
    health = await storage.worker_state.health(account_id=account.id)
    return health if health and health[0].state is HealthState.CLOSED else []


async def test_permanent_refusal_is_not_failed_over(
    storage: Storage, nursery: trio.Nursery, two_providers_route: list[tuple[uuid.UUID, ...]]
) -> None:
    refusing = await httpserver.start(nursery, answers=[httpserver.Answer(400, {"errors": [{"message": "invalid"}]})])
    up = await httpserver.start(nursery, answers=[ACCEPTED])
    account = await make_account(storage)
    a, b = await sendgrid(storage, account, refusing, "a"), await sendgrid(storage, account, up, "b")
    two_providers_route.append((a.id, b.id))
    await storage.messages.enqueue_many([message(account, 1)])
    async with running(storage):
        await wait_until(lambda: _all(storage, account, MessageStatus.FAILED, 1))
    assert up.requests == []


async def test_partial_delivery_defers_only_the_refused_recipients(storage: Storage, nursery: trio.Nursery) -> None:
    # Postmark with no envelope recipient in To: sends one request per recipient, so
    # the upstream can accept one recipient and refuse the other for now.
    answers = {"x@example.net": ACCEPTED, "y@example.net": httpserver.Answer(503, {"Message": "busy"})}
    server = await httpserver.start(nursery, handler=lambda r: answers[r.json()["To"]])
    account = await make_account(storage)
    provider = await storage.providers.create(
        account_id=account.id, name="pm", type=ProviderType.POSTMARK,
        config={"server_token": "t", "base_url": server.url})
    await storage.accounts.update(account.id, default_provider_id=provider.id)
    raw = b"From: a@example.com\r\nTo: list@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    [mid] = await storage.messages.enqueue_many([message(account, 1, ("x@example.net", "y@example.net"), raw)])
    async with running(storage):
        await wait_until(lambda: _all(storage, account, MessageStatus.DEFERRED, 1))
    deferred = await storage.messages.get(mid)
    assert deferred is not None and deferred.rcpt_to == ("y@example.net",)
    [log] = await storage.delivery_logs.list_for_message(mid)
    assert log.outcome is DeliveryOutcome.DELIVERED and "y@example.net: temporary" in log.response


def envelope_addresses(request: httpserver.Request) -> set[str]:
    """Every address a SendGrid request sends to (to, cc and bcc of each personalization)."""
    return {
        a["email"] for p in request.json()["personalizations"]
        for kind in ("to", "cc", "bcc") for a in p.get(kind, ())
    }


async def test_recipients_suppressed_after_queueing_are_not_sent_to(
    storage: Storage, nursery: trio.Nursery
) -> None:
    server = await httpserver.start(nursery, answers=[ACCEPTED])
    account, _ = await with_default(storage, server)
    [partly, wholly] = await storage.messages.enqueue_many([
        message(account, 1, ("bob@example.net", "carol@example.org")),
        message(account, 2, ("carol@example.org",)),
    ])
    # Suppressed while the messages wait in the queue (case as the entry was made).
    await storage.suppressions.add(account_id=account.id, address="Carol@Example.org", reason="complained")
    async with running(storage):
        await wait_until(lambda: _all(storage, account, MessageStatus.SENT, 1))
        await wait_until(lambda: _all(storage, account, MessageStatus.FAILED, 1))
    [request] = server.requests
    assert envelope_addresses(request) == {"bob@example.net"}
    sent = await storage.messages.get(partly)
    assert sent is not None and sent.status is MessageStatus.SENT
    assert sent.last_error == "refused: carol@example.org (on the account's suppression list)"
    logs = await storage.delivery_logs.list_for_message(partly)
    assert [(l.outcome, l.response) for l in logs] == [
        (DeliveryOutcome.FAILED, "not sent, on the account's suppression list: carol@example.org"),
        (DeliveryOutcome.DELIVERED, "202 Accepted"),
    ]
    failed = await storage.messages.get(wholly)
    assert failed is not None and failed.status is MessageStatus.FAILED
    [log] = await storage.delivery_logs.list_for_message(wholly)
    assert (log.outcome, log.provider_id) == (DeliveryOutcome.FAILED, None)


async def test_an_expired_suppression_does_not_stop_delivery(storage: Storage, nursery: trio.Nursery) -> None:
    server = await httpserver.start(nursery, answers=[ACCEPTED])
    account, _ = await with_default(storage, server)
    await storage.suppressions.add(
        account_id=account.id, address="carol@example.org", reason="old bounce",
        expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
    )
    await storage.messages.enqueue_many([message(account, 1, ("carol@example.org",))])
    async with running(storage):
        await wait_until(lambda: _all(storage, account, MessageStatus.SENT, 1))
    assert [envelope_addresses(r) for r in server.requests] == [{"carol@example.org"}]


async def test_two_workers_deliver_every_message_exactly_once(
    storage: Storage, database_url: str, nursery: trio.Nursery
) -> None:
    server = await httpserver.start(nursery, answers=[ACCEPTED])
    account, _ = await with_default(storage, server)
    n = 60
    await storage.messages.enqueue_many([message(account, i) for i in range(n)])
    config = worker_config(batch_size=4, concurrency=4)
    async with (
        open_storage(database_url, min_size=1, max_size=4) as other,
        running(storage, config) as one,
        running(other, config) as two,
    ):
        await wait_until(lambda: _all(storage, account, MessageStatus.SENT, n))
        # A worker counts a result once its batched write has returned, which may be just
        # after the commit this test saw: wait for the counters too, rather than race them.
        await wait_until(lambda: one.statistics().sent + two.statistics().sent >= n)
        counts = one.statistics().sent, two.statistics().sent
    assert sorted(subjects(server)) == sorted(f"n{i}" for i in range(n))  # each once
    assert sum(counts) == n and min(counts) > 0  # both took part


async def test_a_killed_worker_s_messages_are_taken_over_when_its_lease_lapses(
    storage: Storage, nursery: trio.Nursery
) -> None:
    hanging = httpserver.Answer(hang=True)
    server = await httpserver.start(nursery, answers=[hanging])
    account, _ = await with_default(storage, server)
    ids = await storage.messages.enqueue_many([message(account, i) for i in range(3)])
    config = worker_config(lock_timeout=0.5, send_timeout=30, connect_timeout=30)
    async with running(storage, config, close=False, worker_id="killed"):  # no release, no writes
        await wait_until(lambda: _all(storage, account, MessageStatus.SENDING, 3))
        await wait_until(lambda: len(server.requests) == 3 or None)
    server.answers[:] = [ACCEPTED]
    # No housekeeping here: the next claim takes the lapsed leases over.
    async with running(storage, worker_config()):
        await wait_until(lambda: _all(storage, account, MessageStatus.SENT, 3))
    assert len(server.requests) == 6  # delivered again: at-least-once
    for mid in ids:
        row = await storage.messages.get(mid)
        assert row is not None and row.attempts == 2
        first, _ = await storage.delivery_logs.list_for_message(mid)
        assert first.response == "lease of worker killed lapsed without a result; delivering again"


async def test_cancellation_releases_in_flight_claims(storage: Storage, nursery: trio.Nursery) -> None:
    server = await httpserver.start(nursery, answers=[httpserver.Answer(hang=True)])
    account, _ = await with_default(storage, server)
    ids = await storage.messages.enqueue_many([message(account, i) for i in range(3)])
    config = worker_config(send_timeout=30, connect_timeout=30)
    async with running(storage, config):
        await wait_until(lambda: len(server.requests) == 3 or None)
    released = [await storage.messages.get(i) for i in ids]
    assert all(m is not None and m.status is MessageStatus.QUEUED and m.attempts == 0 and m.locked_by is None
               for m in released)


async def test_run_worker_stops_gracefully_when_told(storage: Storage, database_url: str, nursery: trio.Nursery) -> None:
    from relay import composition
    from relay.config import Config
    from relay.worker import run_worker

    server = await httpserver.start(nursery, answers=[ACCEPTED])
    account, _ = await with_default(storage, server)
    await storage.messages.enqueue_many([message(account, i) for i in range(10)])
    runtime = composition.Runtime(config=Config(worker=worker_config()), database_url=database_url, storage=storage)
    stop = trio.Event()
    async with trio.open_nursery() as inner:
        worker = await inner.start(lambda task_status: run_worker(runtime, stop=stop, task_status=task_status))
        await wait_until(lambda: _all(storage, account, MessageStatus.SENT, 10))
        stop.set()
    assert worker.statistics().in_flight == 0 and worker.statistics().sent == 10


async def test_an_unusable_provider_is_logged_and_the_message_deferred(storage: Storage) -> None:
    account = await make_account(storage)
    provider = await storage.providers.create(
        account_id=account.id, name="mx", type=ProviderType.SMTP, config={"host": "127.0.0.1", "tls": "ssl"})
    await storage.accounts.update(account.id, default_provider_id=provider.id)
    [mid] = await storage.messages.enqueue_many([message(account, 1)])
    async with running(storage):
        await wait_until(lambda: _all(storage, account, MessageStatus.DEFERRED, 1))
    [log] = await storage.delivery_logs.list_for_message(mid)
    assert log.outcome is DeliveryOutcome.DEFERRED and log.provider_type == "smtp"
    assert log.response.startswith("provider not usable: smtp provider 'mx'")
    assert "config.tls must be one of none, starttls, implicit" in log.response
