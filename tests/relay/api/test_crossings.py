"""One crossing to the database per API request once the caller's key is cached.

``Storage.statistics().crossings`` counts the operations that went to asyncio with a
pooled connection; each request below is measured alone, after one request that put
the key in the cache (``api.key_cache_ttl``).
"""

from __future__ import annotations

from typing import Any

import pytest

from relay import models
from relay.config import Config

from .conftest import Api, Tenant, api_config
from .test_key_cache import wait_listening


@pytest.fixture
def config() -> Config:
    return api_config(key_cache_ttl=30.0)


async def crossings_of(api: Api, method: str, path: str, key: str, **kw: Any) -> tuple[int, int]:
    """(status, crossings) of one request."""
    before = api.runtime.storage.statistics().crossings
    reply = await api.request(method, path, key=key, **kw)
    return reply.status, api.runtime.storage.statistics().crossings - before


async def warm(api: Api, key: str) -> None:
    """Cache ``key`` (the cache is bypassed until the key-change listener listens)."""
    await wait_listening(api.runtime.storage)
    assert (await api.get("/api/v1/providers", key=key)).status == 200


async def test_tenant_requests_cross_once(api: Api, tenant: Tenant) -> None:
    storage = api.runtime.storage
    provider = await storage.providers.create(
        account_id=tenant.account.id, name="p", type=models.ProviderType.SMTP,
        config={"host": "127.0.0.1", "port": 2525},
    )
    message = models.NewMessage(
        account_id=tenant.account.id, mail_from="s@example.com", rcpt_to=("r@example.net",),
        raw=b"Subject: x\r\n\r\nbody\r\n",
    )
    await storage.messages.enqueue(message)
    await warm(api, tenant.key)
    for method, path, kw in [
        ("GET", "/api/v1/providers", {}),
        ("GET", f"/api/v1/messages/{message.id}", {}),
        ("POST", f"/api/v1/messages/{message.id}/retry", {}),
        ("GET", f"/api/v1/providers/{provider.id}/health", {}),
        ("PATCH", f"/api/v1/accounts/{tenant.id}", {"json": {"name": "Renamed"}}),
        ("GET", f"/api/v1/accounts/{tenant.id}", {}),
    ]:
        status, crossings = await crossings_of(api, method, path, tenant.key, **kw)
        assert status == 200, (method, path)
        assert crossings == 1, (method, path, crossings)


async def test_operator_creates_an_account_with_limits_in_one_crossing(
    api: Api, operator_key: str
) -> None:
    await warm(api, operator_key)
    status, crossings = await crossings_of(
        api, "POST", "/api/v1/accounts", operator_key,
        json={"name": "Limited", "email": "limited@example.com", "password": "a long password",
              "disabled": True, "messages_per_minute": 7, "recipients_per_hour": 70},
    )
    assert (status, crossings) == (201, 1)
    [account] = [a for a in await api.runtime.storage.accounts.list() if a.email == "limited@example.com"]
    assert (account.disabled, account.messages_per_minute, account.recipients_per_hour) == (True, 7, 70)


async def test_rotating_a_key_crosses_once(api: Api, tenant: Tenant) -> None:
    await warm(api, tenant.key)
    status, crossings = await crossings_of(
        api, "POST", f"/api/v1/accounts/{tenant.id}/rotate-key", tenant.key
    )
    assert (status, crossings) == (200, 1)


async def test_another_tenants_account_is_404_without_a_read(api: Api, tenant: Tenant, other: Tenant) -> None:
    await warm(api, tenant.key)
    for method in ("PATCH", "DELETE"):
        kw: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
        status, crossings = await crossings_of(api, method, f"/api/v1/accounts/{other.id}", tenant.key, **kw)
        assert (status, crossings) == (404, 0)
    status, crossings = await crossings_of(
        api, "POST", f"/api/v1/accounts/{other.id}/rotate-key", tenant.key
    )
    assert (status, crossings) == (404, 0)
