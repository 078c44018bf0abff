"""The queue on a real PostgreSQL: enqueue, claim, finish, reclaim, purge, API views."""

import datetime as dt
import functools
import uuid
from typing import Any

import psycopg2
import pytest
import trio

from relay import events, models
from relay.models import DeliveryOutcome, MessageStatus
from relay.storage import (
    AttemptLog,
    Change,
    Finish,
    InvalidReference,
    Storage,
    open_storage,
)

from .helpers import make_account, new_message


def _sql(url: str, statement: str, *args: object) -> None:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
    finally:
        conn.close()


async def test_enqueue_many_is_one_commit_and_claim_returns_bodies(storage: Storage) -> None:
    account = await make_account(storage)
    batch = [new_message(account, body=b"Subject: %d\r\n\r\nx\r\n" % i) for i in range(5)]
    ids = await storage.messages.enqueue_many(batch)
    assert ids == [m.id for m in batch]
    stored = await storage.messages.get(ids[0], with_raw=True)
    assert stored is not None
    assert stored.status is MessageStatus.QUEUED and stored.attempts == 0
    assert stored.raw == batch[0].raw and stored.size == len(batch[0].raw)
    assert stored.rcpt_to == ("a@example.net", "b@example.org")
    assert stored.tls is True and stored.client_ip == "127.0.0.1"

    claimed = await storage.messages.claim(worker_id="w1", limit=10, lock_seconds=60)
    assert {m.id for m in claimed} == set(ids)
    assert all(m.status is MessageStatus.SENDING and m.attempts == 1 for m in claimed)
    assert all(m.locked_by == "w1" and m.raw for m in claimed)
    assert await storage.messages.claim(worker_id="w2", limit=10, lock_seconds=60) == []


async def test_enqueue_many_with_a_bad_row_stores_nothing(storage: Storage) -> None:
    account = await make_account(storage)
    good = new_message(account)
    bad = models.NewMessage(account_id=uuid.uuid4(), mail_from="x@example.com", rcpt_to=("y@example.com",), raw=b"x")
    with pytest.raises(InvalidReference):
        await storage.messages.enqueue_many([good, bad])
    assert await storage.messages.get(good.id) is None


async def test_finish_sent_deferred_failed_with_logs(storage: Storage) -> None:
    account = await make_account(storage)
    ids = await storage.messages.enqueue_many([new_message(account) for _ in range(3)])
    await storage.messages.claim(worker_id="w", limit=3, lock_seconds=60)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    log = AttemptLog(outcome=DeliveryOutcome.DEFERRED, response="451 try later", duration_ms=12, provider_type="smtp")
    applied = await storage.messages.finish("w", [
        Finish(ids[0], MessageStatus.SENT, logs=(AttemptLog(DeliveryOutcome.DELIVERED, "250 ok", 5),)),
        Finish(ids[1], MessageStatus.DEFERRED, logs=(log,), error="451 try later", next_attempt_at=later),
        Finish(ids[2], MessageStatus.FAILED, error="550 no such user"),
    ])
    assert applied == [True, True, True]
    sent, deferred, failed = [await storage.messages.get(i) for i in ids]
    assert sent.status is MessageStatus.SENT and sent.locked_by is None
    assert deferred.status is MessageStatus.DEFERRED and deferred.next_attempt_at == later
    assert failed.status is MessageStatus.FAILED and failed.last_error == "550 no such user"
    logs = await storage.delivery_logs.list_for_message(ids[1])
    assert [(l.outcome, l.response, l.duration_ms) for l in logs] == [(DeliveryOutcome.DEFERRED, "451 try later", 12)]
    # A deferred message is not due before its time.
    assert await storage.messages.claim(worker_id="w", limit=10, lock_seconds=60) == []


#: The statements storing a batch may send, by how they start.
_OURS = (
    ("BEGIN", "BEGIN"), ("COMMIT", "COMMIT"), ("ROLLBACK", "ROLLBACK"),
    ("SELECT DISTINCT account_id FROM webhook_endpoints", "subscribers?"),
    ("INSERT INTO messages", "insert messages"), ("WITH e AS", "insert events"),
)


async def _statements_of_storing(storage: Storage, messages: list[models.NewMessage]) -> list[str]:
    """Store ``messages`` as the SMTP group commit does (``store_messages``) and return
    the statements the connection sent, as asyncpg's query logger saw them."""
    from relay.storage.messages import store_messages

    async def logged(conn: Any) -> list[str]:
        seen: list[str] = []

        def note(query: Any) -> None:
            text = " ".join(query.query.split())
            for start, name in _OURS:
                if text.startswith(start):
                    seen.append(name)  # else asyncpg's own (type introspection, jit)

        conn.add_query_logger(note)
        try:
            await store_messages(conn, messages)
        finally:
            conn.remove_query_logger(note)
        return seen

    return await storage._bridge.run(logged)


async def test_a_batch_is_two_statements_unless_a_webhook_wants_message_queued(storage: Storage) -> None:
    """No subscriber: the subscription check and one atomic executemany, no BEGIN or
    COMMIT round trip. A subscriber: rows and events in one explicit transaction."""
    quiet, listening = await make_account(storage), await make_account(storage)
    assert await _statements_of_storing(storage, [new_message(quiet), new_message(quiet)]) == [
        "subscribers?", "insert messages",
    ]
    hook = await storage.webhooks.create(
        account_id=listening.id, url="https://hooks.example.com/x", events=(models.EventKind.MESSAGE_QUEUED,),
        secret="s" * 32, limit=20,
    )
    assert hook is not None
    batch = [new_message(quiet), new_message(listening)]
    assert await _statements_of_storing(storage, batch) == [
        "subscribers?", "BEGIN", "insert messages", "insert events", "COMMIT",
    ]
    [delivery] = await storage.webhooks.deliveries(hook.id, account_id=listening.id)
    assert delivery.kind is models.EventKind.MESSAGE_QUEUED and str(batch[1].id) in delivery.body
    assert len(await storage.messages.list(limit=10)) == 4


async def test_finish_builds_verdict_events_only_for_subscribed_accounts(storage: Storage) -> None:
    quiet, listening = await make_account(storage), await make_account(storage)
    hook = await storage.webhooks.create(
        account_id=listening.id, url="https://hooks.example.com/x", events=(models.EventKind.MESSAGE_SENT,),
        secret="s" * 32, limit=20,
    )
    assert hook is not None
    ids = await storage.messages.enqueue_many([new_message(quiet), new_message(listening)])
    await storage.messages.claim(worker_id="w", limit=2, lock_seconds=60)
    built: list[uuid.UUID] = []

    def report(message_id: uuid.UUID, account: models.Account) -> list[models.Event]:
        built.append(message_id)
        return [events.message_event(
            models.EventKind.MESSAGE_SENT, message_id=message_id, account_id=account.id,
            mail_from="a@example.com", rcpt_to=("b@example.net",), at=dt.datetime.now(dt.UTC),
        )]

    applied = await storage.messages.finish("w", [
        Finish(mid, MessageStatus.SENT, account_id=account.id, events=functools.partial(report, mid, account))
        for mid, account in zip(ids, (quiet, listening), strict=True)
    ])
    assert applied == [True, True]
    assert built == [ids[1]]  # the quiet account's events were never built
    [delivery] = await storage.webhooks.deliveries(hook.id, account_id=listening.id)
    assert delivery.kind is models.EventKind.MESSAGE_SENT and str(ids[1]) in delivery.body


def test_finish_events_need_the_account() -> None:
    with pytest.raises(ValueError, match="account_id"):
        Finish(uuid.uuid4(), MessageStatus.SENT, events=lambda: ())


def _query(url: str, statement: str, *args: object) -> list[tuple]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall()
    finally:
        conn.close()


def _lapse(url: str, *ids: uuid.UUID) -> None:
    """End these leases now, as if their worker had stopped renewing them."""
    _sql(url, "UPDATE messages SET locked_until = now() - interval '1 second' WHERE id = ANY(%s::uuid[])",
         [str(i) for i in ids])


async def test_finish_by_a_worker_that_lost_its_claim_does_not_apply(storage: Storage, database_url: str) -> None:
    account = await make_account(storage)
    [mid] = await storage.messages.enqueue_many([new_message(account)])
    await storage.messages.claim(worker_id="dead", limit=1, lock_seconds=60)
    _lapse(database_url, mid)
    assert await storage.messages.reclaim_expired() == 1
    reclaimed = await storage.messages.get(mid)
    assert reclaimed.status is MessageStatus.DEFERRED and reclaimed.attempts == 1 and reclaimed.locked_by is None
    [log] = await storage.delivery_logs.list_for_message(mid)
    assert (log.outcome, log.response) == (
        DeliveryOutcome.DEFERRED, "lease of worker dead lapsed without a result; back in the queue")
    [again] = await storage.messages.claim(worker_id="alive", limit=1, lock_seconds=60)
    assert again.id == mid and again.attempts == 2
    assert await storage.messages.finish("dead", [Finish(mid, MessageStatus.FAILED, error="x")]) == [False]
    assert await storage.messages.finish("alive", [Finish(mid, MessageStatus.SENT)]) == [True]
    assert (await storage.messages.get(mid)).status is MessageStatus.SENT


async def test_claim_takes_over_lapsed_leases_first_but_never_live_ones(storage: Storage, database_url: str) -> None:
    account = await make_account(storage)
    ids = await storage.messages.enqueue_many([new_message(account) for _ in range(3)])
    await storage.messages.claim(worker_id="dead", limit=3, lock_seconds=60)
    queued = await storage.messages.enqueue_many([new_message(account)])
    _lapse(database_url, ids[0], ids[1])

    taken = await storage.messages.claim(worker_id="alive", limit=2, lock_seconds=60)
    # Lapsed leases come before due messages; the live lease on ids[2] is never taken.
    assert {m.id for m in taken} == {ids[0], ids[1]}
    assert all(m.locked_by == "alive" and m.attempts == 2 and m.raw for m in taken)
    [log] = await storage.delivery_logs.list_for_message(ids[0])
    assert (log.outcome, log.response, log.provider_id) == (
        DeliveryOutcome.DEFERRED, "lease of worker dead lapsed without a result; delivering again", None)
    assert [m.id for m in await storage.messages.claim(worker_id="alive", limit=5, lock_seconds=60)] == queued
    assert await storage.messages.claim(worker_id="third", limit=5, lock_seconds=60) == []
    assert await storage.messages.reclaim_expired() == 0

    # The dead worker's verdict, and a verdict fenced to an older attempt, do not apply.
    assert await storage.messages.finish("dead", [Finish(ids[0], MessageStatus.FAILED, error="x")]) == [False]
    assert await storage.messages.finish("alive", [Finish(ids[0], MessageStatus.FAILED, attempt=1)]) == [False]
    assert await storage.messages.finish("alive", [Finish(ids[0], MessageStatus.SENT, attempt=2)]) == [True]


async def test_a_worker_never_retakes_a_message_it_still_holds(storage: Storage, database_url: str) -> None:
    account = await make_account(storage)
    [mid] = await storage.messages.enqueue_many([new_message(account)])
    await storage.messages.claim(worker_id="w", limit=1, lock_seconds=60)
    _lapse(database_url, mid)
    assert await storage.messages.claim(worker_id="w", limit=1, lock_seconds=60, held=[mid]) == []
    # Not held any more (its result could not be written): taken again, counted again.
    [again] = await storage.messages.claim(worker_id="w", limit=1, lock_seconds=60)
    assert again.id == mid and again.attempts == 2


async def test_renew_extends_this_worker_s_leases_and_reports_lost_ones(storage: Storage, database_url: str) -> None:
    account = await make_account(storage)
    mine, lost, done = await storage.messages.enqueue_many([new_message(account) for _ in range(3)])
    await storage.messages.claim(worker_id="w", limit=3, lock_seconds=5)
    _lapse(database_url, lost)
    await storage.messages.claim(worker_id="other", limit=1, lock_seconds=60)
    await storage.messages.finish("w", [Finish(done, MessageStatus.SENT)])
    _lapse(database_url, mine)  # lapsed but not taken: still this worker's

    assert await storage.messages.renew("w", [mine, lost, done], 120) == {mine}
    [(remaining,)] = _query(database_url, "SELECT locked_until - now() FROM messages WHERE id = %s", str(mine))
    assert dt.timedelta(seconds=110) < remaining <= dt.timedelta(seconds=120)
    taken = await storage.messages.get(lost)
    assert taken.locked_by == "other" and taken.attempts == 2
    assert await storage.messages.renew("w", [], 120) == set()


async def test_finish_stores_a_nul_from_an_upstream_as_a_replacement_character(storage: Storage) -> None:
    account = await make_account(storage)
    [mid] = await storage.messages.enqueue_many([new_message(account)])
    await storage.messages.claim(worker_id="w", limit=1, lock_seconds=60)
    log = AttemptLog(DeliveryOutcome.FAILED, "550 bad\x00byte", 3)
    assert await storage.messages.finish("w", [Finish(mid, MessageStatus.FAILED, (log,), "550 bad\x00byte")]) == [True]
    assert (await storage.messages.get(mid)).last_error == "550 bad\ufffdbyte"
    [stored] = await storage.delivery_logs.list_for_message(mid)
    assert stored.response == "550 bad\ufffdbyte"


async def test_unexpired_claims_are_not_reclaimed(storage: Storage) -> None:
    account = await make_account(storage)
    await storage.messages.enqueue_many([new_message(account)])
    await storage.messages.claim(worker_id="w", limit=1, lock_seconds=60)
    assert await storage.messages.reclaim_expired() == 0


async def test_release_gives_claims_back_uncounted(storage: Storage) -> None:
    account = await make_account(storage)
    ids = await storage.messages.enqueue_many([new_message(account) for _ in range(2)])
    await storage.messages.claim(worker_id="w", limit=2, lock_seconds=60)
    assert await storage.messages.release("other", ids) == 0
    assert await storage.messages.release("w", ids) == 2
    for mid in ids:
        m = await storage.messages.get(mid)
        assert m.status is MessageStatus.QUEUED and m.attempts == 0 and m.locked_by is None


async def test_purge_deletes_only_old_finished_messages_and_logs(storage: Storage, database_url: str) -> None:
    account = await make_account(storage)
    ids = await storage.messages.enqueue_many([new_message(account) for _ in range(3)])
    await storage.messages.claim(worker_id="w", limit=2, lock_seconds=60)
    claimed_ids = [ids[0], ids[1]]
    await storage.messages.finish("w", [
        Finish(claimed_ids[0], MessageStatus.SENT, logs=(AttemptLog(DeliveryOutcome.DELIVERED, "250", 1),)),
        Finish(claimed_ids[1], MessageStatus.SENT),
    ])
    _sql(database_url, "UPDATE messages SET updated_at = now() - interval '8 days' WHERE id = %s", str(claimed_ids[0]))
    assert await storage.messages.purge_finished(dt.timedelta(days=7)) == 1
    assert await storage.messages.get(claimed_ids[0]) is None
    assert await storage.delivery_logs.list_for_message(claimed_ids[0]) == []
    assert await storage.messages.get(claimed_ids[1]) is not None
    assert await storage.messages.get(ids[2]) is not None


async def test_list_filters_and_cursor_pages(storage: Storage) -> None:
    a = await make_account(storage)
    b = await make_account(storage)
    mine = await storage.messages.enqueue_many([new_message(a) for _ in range(5)])
    await storage.messages.enqueue_many([new_message(b)])
    page1 = await storage.messages.list(account_id=a.id, limit=3)
    page2 = await storage.messages.list(account_id=a.id, limit=3, before=(page1[-1].created_at, page1[-1].id))
    assert len(page1) == 3 and len(page2) == 2
    assert {m.id for m in page1 + page2} == set(mine)
    assert all(m.raw is None for m in page1)
    assert await storage.messages.list(account_id=a.id, status=MessageStatus.SENT) == []
    assert len(await storage.messages.list(status=MessageStatus.QUEUED)) == 6
    future = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert await storage.messages.list(account_id=a.id, since=future) == []
    counts = await storage.messages.count_by_status(account_id=a.id)
    assert counts[MessageStatus.QUEUED] == 5 and counts[MessageStatus.SENT] == 0


async def test_retry_and_delete_respect_state_and_tenant(storage: Storage) -> None:
    a = await make_account(storage)
    b = await make_account(storage)
    ids = await storage.messages.enqueue_many([new_message(a) for _ in range(2)])
    await storage.messages.claim(worker_id="w", limit=1, lock_seconds=60)
    sending = next(m for m in [await storage.messages.get(i) for i in ids] if m.status is MessageStatus.SENDING)
    queued = next(i for i in ids if i != sending.id)
    assert await storage.messages.retry(queued, account_id=b.id) is Change.NOT_FOUND
    assert await storage.messages.delete(queued, account_id=b.id) is Change.NOT_FOUND
    assert await storage.messages.retry(sending.id, account_id=a.id) is Change.WRONG_STATE
    assert await storage.messages.delete(sending.id, account_id=a.id) is Change.WRONG_STATE
    await storage.messages.finish("w", [Finish(sending.id, MessageStatus.FAILED, error="boom")])
    assert await storage.messages.retry(sending.id, account_id=a.id) is Change.DONE
    assert (await storage.messages.get(sending.id)).status is MessageStatus.QUEUED
    assert await storage.messages.delete(queued, account_id=a.id) is Change.DONE
    assert await storage.messages.get(queued) is None
    assert await storage.messages.retry(uuid.uuid4()) is Change.NOT_FOUND


async def test_two_concurrent_claimers_never_get_the_same_message(storage: Storage, database_url: str) -> None:
    account = await make_account(storage)
    total = 300
    for start in range(0, total, 100):
        await storage.messages.enqueue_many([new_message(account) for _ in range(100)])
    got: dict[str, list[uuid.UUID]] = {"w1": [], "w2": []}

    async def claimer(worker_id: str) -> None:
        async with open_storage(database_url, min_size=1, max_size=2) as own:
            while True:
                batch = await own.messages.claim(worker_id=worker_id, limit=7, lock_seconds=60)
                if not batch:
                    return
                got[worker_id].extend(m.id for m in batch)
                await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(claimer, "w1")
        nursery.start_soon(claimer, "w2")
    assert not set(got["w1"]) & set(got["w2"])
    assert len(got["w1"]) + len(got["w2"]) == total
    assert got["w1"] and got["w2"], "both claimers should have taken part"


async def test_health_reports_pool(storage: Storage) -> None:
    health = await storage.health()
    assert health.ok and health.error is None
    assert health.max_size == 4 and health.size >= 1 and 0 <= health.idle <= health.size


async def test_health_counts_operations_waiting_for_a_connection(database_url: str) -> None:
    import asyncio

    async with open_storage(database_url, min_size=1, max_size=1) as small:
        release = asyncio.Event()
        holding_flag: list[bool] = []

        async def hold(conn: object) -> None:  # asyncio side, holding the only connection
            holding_flag.append(True)
            await release.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(small._bridge.run, hold)
            with trio.fail_after(5):
                while not holding_flag:
                    await trio.sleep(0.001)
            nursery.start_soon(small.ping)
            with trio.fail_after(5):
                while small._bridge.waiting == 0:
                    await trio.sleep(0.001)
            health_waiting = small._bridge.waiting
            release.set()
        assert health_waiting == 1
        assert small._bridge.waiting == 0
        assert (await small.health()).waiting == 0


async def test_acquire_timeout_bounds_the_wait_for_a_busy_pool(database_url: str) -> None:
    """``database.acquire_timeout``: with the only connection held, another operation
    gives up as unavailable after that long (and the cache setting is honoured)."""
    import asyncio

    from relay.storage import DatabaseUnavailable

    async with open_storage(
        database_url, min_size=1, max_size=1, acquire_timeout=0.2, statement_cache_size=0
    ) as small:
        release = asyncio.Event()
        sizes: list[int] = []

        async def hold(conn: Any) -> None:  # asyncio side, holding the only connection
            sizes.append(conn._stmt_cache.get_max_size())
            await release.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(small._bridge.run, hold)
            with trio.fail_after(5):
                while not sizes:
                    await trio.sleep(0.001)
            with pytest.raises(DatabaseUnavailable), trio.fail_after(5):
                await small.ping()
            release.set()
        assert sizes == [0]
        await small.ping()  # the connection is back
