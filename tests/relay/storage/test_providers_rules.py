import uuid

import pytest

from relay import models
from relay.storage import InvalidReference, Storage

from .helpers import make_account


async def _provider(storage: Storage, account: models.Account, name: str = "up") -> models.Provider:
    return await storage.providers.create(
        account_id=account.id, name=name, type=models.ProviderType.SMTP,
        config={"host": "127.0.0.1", "port": 25, "password": "s3cret"},
    )


async def test_provider_crud_and_tenant_scope(storage: Storage) -> None:
    a = await make_account(storage)
    b = await make_account(storage)
    p = await _provider(storage, a)
    assert p.config["port"] == 25 and p.type is models.ProviderType.SMTP
    assert "s3cret" not in repr(p)
    assert await storage.providers.get(p.id, account_id=a.id) == p
    assert await storage.providers.get(p.id, account_id=b.id) is None
    assert [x.id for x in await storage.providers.list(account_id=a.id)] == [p.id]
    assert await storage.providers.list(account_id=b.id) == []
    assert await storage.providers.update(p.id, account_id=b.id, enabled=False) is None
    changed = await storage.providers.update(p.id, account_id=a.id, enabled=False, config={"host": "h"})
    assert changed is not None and changed.enabled is False and changed.config == {"host": "h"}
    assert await storage.providers.delete(p.id, account_id=b.id) is False
    assert await storage.providers.delete(p.id, account_id=a.id) is True


async def test_provider_for_missing_account(storage: Storage) -> None:
    with pytest.raises(InvalidReference):
        await storage.providers.create(
            account_id=uuid.uuid4(), name="x", type=models.ProviderType.SES, config={}
        )


async def test_rules_ordered_by_priority_and_filtered(storage: Storage) -> None:
    a = await make_account(storage)
    p = await _provider(storage, a)
    low = await storage.rules.create(account_id=a.id, provider_id=p.id, conditions={}, priority=50)
    high = await storage.rules.create(account_id=a.id, provider_id=p.id, conditions={"all": []}, priority=10)
    off = await storage.rules.create(account_id=a.id, provider_id=p.id, conditions={}, priority=1, enabled=False)
    assert [r.id for r in await storage.rules.list(account_id=a.id)] == [off.id, high.id, low.id]
    assert [r.id for r in await storage.rules.list(account_id=a.id, enabled_only=True)] == [high.id, low.id]
    assert high.conditions == {"all": []}


async def test_rule_cannot_name_another_tenants_provider(storage: Storage) -> None:
    a = await make_account(storage)
    b = await make_account(storage)
    pa = await _provider(storage, a)
    pb = await _provider(storage, b)
    with pytest.raises(InvalidReference):
        await storage.rules.create(account_id=a.id, provider_id=pb.id, conditions={})
    rule = await storage.rules.create(account_id=a.id, provider_id=pa.id, conditions={})
    with pytest.raises(InvalidReference):
        await storage.rules.update(rule.id, account_id=a.id, provider_id=pb.id)
    assert await storage.rules.update(rule.id, account_id=b.id, priority=5) is None
    moved = await storage.rules.update(rule.id, account_id=a.id, priority=5, provider_id=pa.id)
    assert moved is not None and moved.priority == 5


async def test_deleting_provider_deletes_its_rules(storage: Storage) -> None:
    a = await make_account(storage)
    p = await _provider(storage, a)
    rule = await storage.rules.create(account_id=a.id, provider_id=p.id, conditions={})
    await storage.providers.delete(p.id)
    assert await storage.rules.get(rule.id) is None
    assert await storage.rules.delete(rule.id) is False


async def test_rule_failover_providers_are_ordered_and_owned(storage: Storage) -> None:
    a = await make_account(storage)
    b = await make_account(storage)
    p1, p2, p3 = [await _provider(storage, a, name=f"p{i}") for i in range(3)]
    foreign = await _provider(storage, b)
    rule = await storage.rules.create(
        account_id=a.id, provider_id=p1.id, conditions={}, fallback_provider_ids=[p3.id, p2.id]
    )
    assert rule.provider_ids == (p1.id, p3.id, p2.id)
    with pytest.raises(InvalidReference):
        await storage.rules.create(
            account_id=a.id, provider_id=p1.id, conditions={}, fallback_provider_ids=[foreign.id]
        )
    with pytest.raises(InvalidReference):
        await storage.rules.update(rule.id, fallback_provider_ids=[p2.id, foreign.id])
    changed = await storage.rules.update(rule.id, fallback_provider_ids=[p2.id])
    assert changed is not None and changed.provider_ids == (p1.id, p2.id)


async def test_account_default_provider_must_be_its_own(storage: Storage) -> None:
    a = await make_account(storage)
    b = await make_account(storage)
    mine = await _provider(storage, a)
    theirs = await _provider(storage, b)
    with pytest.raises(InvalidReference):
        await storage.accounts.update(a.id, default_provider_id=theirs.id)
    updated = await storage.accounts.update(a.id, default_provider_id=mine.id, messages_per_minute=30)
    assert updated is not None and updated.default_provider_id == mine.id
    assert updated.messages_per_minute == 30 and updated.recipients_per_hour is None
    await storage.providers.delete(mine.id)
    assert (await storage.accounts.get(a.id)).default_provider_id is None
    assert await storage.accounts.update(uuid.uuid4(), default_provider_id=mine.id) is None
