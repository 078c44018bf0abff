"""Group commit against a real PostgreSQL."""

from __future__ import annotations

import uuid

import trio
import trio.testing

from relay import models
from relay.smtp.enqueue import GroupCommitter
from relay.storage import DatabaseUnavailable, Storage

from ..storage.helpers import make_account, new_message


async def test_concurrent_stores_share_commits_and_all_land(storage: Storage, nursery: trio.Nursery) -> None:
    account = await make_account(storage)
    committer = GroupCommitter(storage)
    await nursery.start(committer.run)
    messages = [new_message(account) for _ in range(40)]
    stored: list[uuid.UUID] = []

    async def one(message: models.NewMessage) -> None:
        stored.append(await committer.store(message))

    async with trio.open_nursery() as senders:
        for m in messages:
            senders.start_soon(one, m)
    assert sorted(stored) == sorted(m.id for m in messages)
    assert len(await storage.messages.list(limit=100)) == 40
    stats = committer.statistics()
    assert stats.messages == 40 and stats.batches < 40 and stats.largest_batch > 1


async def test_one_bad_message_does_not_refuse_the_others(storage: Storage, nursery: trio.Nursery) -> None:
    account = await make_account(storage)
    committer = GroupCommitter(storage)
    await nursery.start(committer.run)
    good = [new_message(account) for _ in range(3)]
    orphan = models.NewMessage(account_id=uuid.uuid4(), mail_from="a@example.com", rcpt_to=("b@example.com",), raw=b"x")
    outcomes: dict[uuid.UUID, str] = {}

    async def one(message: models.NewMessage) -> None:
        try:
            await committer.store(message)
            outcomes[message.id] = "stored"
        except Exception as exc:
            outcomes[message.id] = type(exc).__name__

    async with trio.open_nursery() as senders:
        for m in [*good, orphan]:
            senders.start_soon(one, m)
    assert outcomes[orphan.id] == "InvalidReference"
    assert all(outcomes[m.id] == "stored" for m in good)


async def test_waiters_are_refused_when_the_committer_stops(storage: Storage) -> None:
    account = await make_account(storage)
    committer = GroupCommitter(storage)
    outcome: list[str] = []

    async def waiter() -> None:
        try:
            await committer.store(new_message(account))
            outcome.append("stored")
        except DatabaseUnavailable:
            outcome.append("refused")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        with trio.CancelScope() as scope:
            scope.cancel()
            await committer.run()
    assert outcome == ["refused"]
    assert await storage.messages.list() == []
