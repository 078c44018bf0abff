"""Tenant isolation: account A's key against every one of account B's objects.

Every method on every object path answers 404 — the same answer as for an id that
does not exist, so nothing tells A that B's object is there — and B's objects are
unchanged afterwards.
"""

from __future__ import annotations

import uuid

import pytest

from relay import models
from relay.models import ProviderType
from relay.storage import Storage

from .conftest import Api, Tenant

BODIES = {
    "accounts": {"name": "x", "email": "x@hijack.example"},
    "providers": {"name": "x", "type": "sendgrid", "config": {"api_key": "stolen"}},
    "routing-rules": {"provider_id": str(uuid.UUID(int=1))},
}
# (method, suffix) per collection: every route on an object.
ROUTES = {
    "accounts": [("GET", ""), ("PUT", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/rotate-key")],
    "providers": [("GET", ""), ("PUT", ""), ("PATCH", ""), ("DELETE", "")],
    "routing-rules": [("GET", ""), ("PUT", ""), ("PATCH", ""), ("DELETE", "")],
    "messages": [("GET", ""), ("DELETE", ""), ("POST", "/retry")],
}
MATRIX = [(collection, method, suffix) for collection, routes in ROUTES.items() for method, suffix in routes]


async def objects_of(storage: Storage, tenant: Tenant) -> dict[str, uuid.UUID]:
    provider = await storage.providers.create(
        account_id=tenant.account.id, name="b", type=ProviderType.SENDGRID, config={"api_key": "b-secret"})
    rule = await storage.rules.create(account_id=tenant.account.id, provider_id=provider.id, conditions={})
    message = await storage.messages.enqueue(models.NewMessage(
        account_id=tenant.account.id, mail_from="b@example.com", rcpt_to=("c@example.net",), raw=b"x"))
    return {"accounts": tenant.account.id, "providers": provider.id, "routing-rules": rule.id,
            "messages": message}


@pytest.mark.parametrize(("collection", "method", "suffix"), MATRIX)
async def test_other_tenants_objects_are_404(api: Api, tenant: Tenant, other: Tenant, storage: Storage,
                                             collection: str, method: str, suffix: str) -> None:
    theirs = await objects_of(storage, other)
    body = BODIES.get(collection) if method in ("PUT", "PATCH") else None
    kwargs = {"json": body} if body is not None else {}

    foreign = await api.request(method, f"/api/v1/{collection}/{theirs[collection]}{suffix}",
                                key=tenant.key, **kwargs)
    missing = await api.request(method, f"/api/v1/{collection}/{uuid.uuid4()}{suffix}",
                                key=tenant.key, **kwargs)
    assert foreign.status == missing.status == 404
    assert foreign.json["detail"] == missing.json["detail"]
    assert str(theirs[collection]) not in foreign.body.decode()

    # Nothing of B's changed.
    assert await storage.accounts.get(other.account.id) == other.account
    provider = await storage.providers.get(theirs["providers"])
    assert provider is not None and provider.config == {"api_key": "b-secret"}
    assert await storage.rules.get(theirs["routing-rules"]) is not None
    message = await storage.messages.get(theirs["messages"])
    assert message is not None and message.status is models.MessageStatus.QUEUED
    # B's key still works (A could not rotate it).
    assert (await api.get(f"/api/v1/accounts/{other.id}", key=other.key)).status == 200


async def test_lists_show_only_own_objects(api: Api, tenant: Tenant, other: Tenant, storage: Storage) -> None:
    mine = await objects_of(storage, tenant)
    await objects_of(storage, other)
    for collection in ("providers", "routing-rules", "messages"):
        reply = await api.get(f"/api/v1/{collection}", key=tenant.key)
        assert [item["id"] for item in reply.json["items"]] == [str(mine[collection])], collection


async def test_rule_cannot_point_at_another_tenants_provider(api: Api, tenant: Tenant, other: Tenant,
                                                             storage: Storage) -> None:
    mine = await objects_of(storage, tenant)
    theirs = await objects_of(storage, other)
    reply = await api.patch(f"/api/v1/routing-rules/{mine['routing-rules']}", key=tenant.key,
                            json={"provider_id": str(theirs["providers"])})
    assert reply.status == 422
    reply = await api.patch(f"/api/v1/accounts/{tenant.id}", key=tenant.key,
                            json={"default_provider_id": str(theirs["providers"])})
    assert reply.status == 422
