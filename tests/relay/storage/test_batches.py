"""Group commit (``BatchWriter``) against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg  # the test's own second connection, to hold locks and end backends
import pytest
import trio
import trio.testing

from relay import models
from relay.storage import BatchWriter, DatabaseUnavailable, InvalidReference, Storage
from relay.storage._bridge import run_on_host
from relay.storage.messages import _insert_messages

from .helpers import make_account, new_message


async def on_host(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Run an asyncio coroutine function (the test's own asyncpg connection) on the host loop."""
    task = await run_on_host(asyncio.get_running_loop(), lambda: fn(*args))
    return task.result()


async def lock_waiters(conn: Any, like: str) -> list[int]:
    """Backends waiting for a lock whose query matches ``like`` (read afresh: inside a
    transaction PostgreSQL would otherwise keep showing its first snapshot)."""
    await on_host(conn.execute, "SELECT pg_stat_clear_snapshot()")
    rows = await on_host(
        conn.fetch,
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1"
        " AND datname = current_database()",  # never another test's backend (shared server)
        like,
    )
    return [row["pid"] for row in rows]


def orphan() -> models.NewMessage:
    """A message whose account does not exist: the database refuses it (foreign key)."""
    return models.NewMessage(
        account_id=uuid.uuid4(), mail_from="a@example.com", rcpt_to=("b@example.com",), raw=b"x"
    )


async def write_all(
    writer: BatchWriter[models.NewMessage], messages: list[models.NewMessage]
) -> dict[uuid.UUID, BaseException | None]:
    """Write every message concurrently; each one's outcome (None = stored)."""
    outcomes: dict[uuid.UUID, BaseException | None] = {}

    async def one(message: models.NewMessage) -> None:
        try:
            await writer.write(message)
            outcomes[message.id] = None
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcomes[message.id] = exc

    async with trio.open_nursery() as senders:
        for m in messages:
            senders.start_soon(one, m)
    return outcomes


async def stored_ids(storage: Storage) -> set[uuid.UUID]:
    return {m.id for m in await storage.messages.list(limit=1000)}


async def test_concurrent_writes_share_commits_and_all_land(storage: Storage, nursery: trio.Nursery) -> None:
    account = await make_account(storage)
    writer = storage.messages.writer()
    await nursery.start(writer.run)
    messages = [new_message(account) for _ in range(40)]
    outcomes = await write_all(writer, messages)
    assert all(outcome is None for outcome in outcomes.values())
    assert await stored_ids(storage) == {m.id for m in messages}
    stats = writer.statistics()
    assert stats.items == 40 and stats.batches < 40 and stats.largest_batch > 1


async def test_one_bad_message_is_refused_alone_with_its_own_error(
    storage: Storage, nursery: trio.Nursery
) -> None:
    account = await make_account(storage)
    writer = storage.messages.writer()
    await nursery.start(writer.run)
    good = [new_message(account) for _ in range(3)]
    bad = orphan()
    outcomes = await write_all(writer, [*good, bad])
    assert isinstance(outcomes[bad.id], InvalidReference)
    assert all(outcomes[m.id] is None for m in good)
    assert writer.statistics().split_batches == 1
    assert await stored_ids(storage) == {m.id for m in good}


async def test_retries_of_a_failed_batch_do_not_hold_up_the_next_batch(
    storage: Storage, database_url: str, nursery: trio.Nursery
) -> None:
    """A batch fails (one orphan); while its good item's lone retry is stuck behind a
    lock, a new write still commits."""
    account = await make_account(storage)
    good, bad, later = new_message(account), orphan(), new_message(account)

    async def insert(conn: Any, messages: Sequence[models.NewMessage]) -> None:
        if [m.id for m in messages] == [good.id]:  # the retry: wait for the test's gate
            await conn.execute("SELECT pg_advisory_xact_lock(4242)")
        await _insert_messages(conn, messages)

    writer = BatchWriter(storage.messages._bridge, insert)
    gate = await on_host(asyncpg.connect, database_url)
    try:
        await on_host(gate.execute, "BEGIN")
        await on_host(gate.execute, "SELECT pg_advisory_xact_lock(4242)")
        outcomes: dict[uuid.UUID, BaseException | None] = {}

        async def batch_one() -> None:
            outcomes.update(await write_all(writer, [good, bad]))

        async with trio.open_nursery() as inner:
            inner.start_soon(batch_one)
            await trio.testing.wait_all_tasks_blocked()  # both queued: one batch
            await nursery.start(writer.run)
            with trio.fail_after(10):
                while not await lock_waiters(gate, "%pg_advisory_xact_lock%"):
                    await trio.sleep(0.01)
                await writer.write(later)
            assert await stored_ids(storage) == {later.id}
            await on_host(gate.execute, "ROLLBACK")  # open the gate: the retry commits
    finally:
        await on_host(gate.close)
    assert outcomes[good.id] is None
    assert isinstance(outcomes[bad.id], InvalidReference)
    assert writer.statistics().split_batches == 1
    assert await stored_ids(storage) == {good.id, later.id}


async def test_a_database_outage_mid_batch_refuses_every_waiter_with_its_own_error(
    storage: Storage, database_url: str, nursery: trio.Nursery
) -> None:
    """The batch's transaction is blocked on a lock; its backend is then terminated:
    every waiter gets DatabaseUnavailable (its own instance, from the shared cause),
    nothing is stored, and the next write succeeds."""
    account = await make_account(storage)
    writer = storage.messages.writer()
    admin = await on_host(asyncpg.connect, database_url)
    try:
        await on_host(admin.execute, "BEGIN")
        await on_host(admin.execute, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        messages = [new_message(account) for _ in range(5)]
        outcomes: dict[uuid.UUID, BaseException | None] = {}

        async def send_all() -> None:
            outcomes.update(await write_all(writer, messages))

        async with trio.open_nursery() as inner:
            inner.start_soon(send_all)
            await trio.testing.wait_all_tasks_blocked()  # all five queued: one batch
            await nursery.start(writer.run)
            with trio.fail_after(10):
                while not (pids := await lock_waiters(admin, "%INSERT INTO messages%")):
                    await trio.sleep(0.01)
            for pid in pids:
                await on_host(admin.execute, "SELECT pg_terminate_backend($1)", pid)
        await on_host(admin.execute, "ROLLBACK")
    finally:
        await on_host(admin.close)
    errors = list(outcomes.values())
    assert len(errors) == 5 and all(isinstance(e, DatabaseUnavailable) for e in errors)
    assert len({id(e) for e in errors}) == 5, "each waiter has its own exception"
    causes = {id(e.__cause__) for e in errors if e is not None}
    assert len(causes) == 1, "raised from the one shared cause"
    assert writer.statistics().batches == 0
    assert await stored_ids(storage) == set()
    again = new_message(account)
    with trio.fail_after(10):
        await writer.write(again)
    assert await stored_ids(storage) == {again.id}


async def test_the_queue_is_bounded(storage: Storage) -> None:
    """With the writer not running, at most max_waiting writes are queued; the next waits."""
    account = await make_account(storage)
    writer = BatchWriter(storage.messages._bridge, _never, max_waiting=2)
    queued = 0

    async def one() -> None:
        nonlocal queued
        with trio.CancelScope() as scope:
            scope.deadline = trio.current_time() + 60
            await writer.write(new_message(account))

    async with trio.open_nursery() as senders:
        for _ in range(3):
            senders.start_soon(one)
        await trio.testing.wait_all_tasks_blocked()
        queued = writer.statistics().waiting
        senders.cancel_scope.cancel()
    assert queued == 2


async def _never(conn: Any, messages: Sequence[models.NewMessage]) -> None:
    raise AssertionError("the writer does not run in this test")


async def test_waiters_are_refused_when_the_writer_stops(storage: Storage) -> None:
    account = await make_account(storage)
    writer = storage.messages.writer()
    outcome: list[str] = []

    async def waiter() -> None:
        try:
            await writer.write(new_message(account))
            outcome.append("stored")
        except DatabaseUnavailable:
            outcome.append("refused")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        with trio.CancelScope() as scope:
            scope.cancel()
            await writer.run()
    assert outcome == ["refused"]
    assert await storage.messages.list() == []
    with pytest.raises(DatabaseUnavailable):
        await writer.write(new_message(account))
