"""DKIM keys against a real PostgreSQL: scoping, the (domain, selector) rule across
accounts, the per-account limit under concurrency, and the cascade."""

from __future__ import annotations

import uuid

import pytest
import trio

from relay import models
from relay.storage import InvalidReference, SelectorTaken, Storage, TooManyDkimKeys

from .helpers import make_account


async def _create(
    storage: Storage, account: models.Account, selector: str, *, domain: str = "example.com",
    limit: int = 20, enabled: bool = True,
) -> models.DkimKey:
    return await storage.dkim_keys.create(
        key_id=uuid.uuid4(), account_id=account.id, domain=domain, selector=selector,
        algorithm="ed25519-sha256", private_key=b"\x01encrypted", public_key="cHVibGlj",
        limit=limit, enabled=enabled,
    )


async def test_create_list_get_update_delete_scoped_by_account(storage: Storage) -> None:
    a, b = await make_account(storage), await make_account(storage)
    first = await _create(storage, a, "s1")
    second = await _create(storage, a, "s2", enabled=False)
    assert first.private_key == b"\x01encrypted" and "encrypted" not in repr(first)
    assert [k.id for k in await storage.dkim_keys.list(account_id=a.id)] == [first.id, second.id]
    assert await storage.dkim_keys.list(account_id=b.id) == []
    assert await storage.dkim_keys.get(first.id, account_id=b.id) is None
    assert await storage.dkim_keys.get(first.id, account_id=a.id) == first
    assert [k.id for k in await storage.dkim_keys.enabled_for_account(a.id)] == [first.id]
    assert await storage.dkim_keys.set_enabled(second.id, True, account_id=b.id) is None
    changed = await storage.dkim_keys.set_enabled(second.id, True, account_id=a.id)
    assert changed is not None and changed.enabled and changed.updated_at >= second.updated_at
    assert len(await storage.dkim_keys.enabled_for_account(a.id)) == 2
    assert await storage.dkim_keys.delete(first.id, account_id=b.id) is False
    assert await storage.dkim_keys.delete(first.id, account_id=a.id) is True
    assert [k.id for k in await storage.dkim_keys.list()] == [second.id]


async def test_selector_unique_per_domain_across_accounts(storage: Storage) -> None:
    a, b = await make_account(storage), await make_account(storage)
    await _create(storage, a, "s1")
    with pytest.raises(SelectorTaken):
        await _create(storage, b, "s1")
    await _create(storage, b, "s1", domain="example.org")  # another domain: fine


async def test_limit_holds_under_concurrent_creates(storage: Storage) -> None:
    account = await make_account(storage)
    outcomes: list[str] = []

    async def one(i: int) -> None:
        try:
            await _create(storage, account, f"s{i}", limit=3)
            outcomes.append("ok")
        except TooManyDkimKeys:
            outcomes.append("full")

    async with trio.open_nursery() as nursery:
        for i in range(4):
            nursery.start_soon(one, i)
    assert sorted(outcomes) == ["full", "ok", "ok", "ok"]


async def test_unknown_account_and_cascade(storage: Storage) -> None:
    ghost = await make_account(storage)
    await storage.accounts.delete(ghost.id)
    with pytest.raises(InvalidReference):
        await _create(storage, ghost, "s1")
    account = await make_account(storage)
    await _create(storage, account, "s1")
    await storage.accounts.delete(account.id)
    assert await storage.dkim_keys.list() == []
