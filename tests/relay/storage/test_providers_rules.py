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
