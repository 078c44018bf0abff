"""/api/v1/routing-rules: conditions, providers of the same account, priority order."""

from __future__ import annotations

import uuid

import pytest

from relay import models
from relay.models import ProviderType
from relay.storage import Storage

from .conftest import Api, Tenant


async def provider(storage: Storage, tenant: Tenant, name: str = "p") -> models.Provider:
    return await storage.providers.create(
        account_id=tenant.account.id, name=name, type=ProviderType.SENDGRID, config={"api_key": "k"}
    )


async def test_create_get_and_defaults(api: Api, tenant: Tenant, storage: Storage) -> None:
    p = await provider(storage, tenant)
    conditions = {"all": [{"recipient_domain": {"suffix": "gmail.com"}},
                          {"header": {"name": "X-Campaign", "equals": "spring"}}]}
    reply = await api.post("/api/v1/routing-rules", key=tenant.key,
                           json={"provider_id": str(p.id), "conditions": conditions})
    assert reply.status == 201, reply.body
    body = reply.json
    assert (body["priority"], body["enabled"], body["name"], body["fallback_provider_ids"]) == (100, True, "", [])
    assert body["conditions"] == conditions
    assert reply.headers["location"] == f"/api/v1/routing-rules/{body['id']}"
    assert (await api.get(f"/api/v1/routing-rules/{body['id']}", key=tenant.key)).json == body


@pytest.mark.parametrize(("conditions", "field", "words"), [
    ({"recipient": "x"}, "conditions", "unknown condition 'recipient'"),
    ({"all": {}}, "conditions.all", "expected a list"),
    ({"any": []}, "conditions.any", "at least one"),
    ({"all": [{}, {"header": {"name": "a b", "equals": "x"}}]}, "conditions.all[1].header.name", "header name"),
    ({"recipient_domain": "not a domain"}, "conditions.recipient_domain", "not a domain name"),
    ({"sender_domain": {"regex": ".*"}}, "conditions.sender_domain", "unknown operator 'regex'"),
    ({"size": {"greater_than": -1}}, "conditions.size.greater_than", "whole number"),
    ({"recipient_domain": "a.example", "sender": "b@example.com"}, "conditions", "one key per condition"),
    ("everything", "conditions", "expected a condition object"),
])
async def test_bad_conditions_say_where(api: Api, tenant: Tenant, storage: Storage, conditions: object,
                                        field: str, words: str) -> None:
    p = await provider(storage, tenant)
    reply = await api.post("/api/v1/routing-rules", key=tenant.key,
                           json={"provider_id": str(p.id), "conditions": conditions})
    assert reply.status == 422, reply.body
    assert reply.json["field"] == field
    assert words in reply.json["detail"]


async def test_provider_must_be_the_accounts_own(api: Api, tenant: Tenant, other: Tenant, storage: Storage) -> None:
    mine, theirs = await provider(storage, tenant), await provider(storage, other)
    for body in ({"provider_id": str(theirs.id)},
                 {"provider_id": str(mine.id), "fallback_provider_ids": [str(theirs.id)]},
                 {"provider_id": str(uuid.uuid4())}):
        reply = await api.post("/api/v1/routing-rules", key=tenant.key, json=body)
        assert reply.status == 422, body
        assert reply.json["field"] == "provider_id"
    reply = await api.post("/api/v1/routing-rules", key=tenant.key,
                           json={"provider_id": str(mine.id), "fallback_provider_ids": [str(mine.id)]})
    assert reply.status == 422 and reply.json["field"] == "fallback_provider_ids[0]"


async def test_list_is_ordered_by_priority(api: Api, tenant: Tenant, storage: Storage) -> None:
    p = await provider(storage, tenant)
    for priority in (30, 10, 20):
        reply = await api.post("/api/v1/routing-rules", key=tenant.key,
                               json={"provider_id": str(p.id), "priority": priority, "name": f"r{priority}"})
        assert reply.status == 201
    reply = await api.get("/api/v1/routing-rules", key=tenant.key)
    assert [r["priority"] for r in reply.json["items"]] == [10, 20, 30]


async def test_put_patch_delete(api: Api, tenant: Tenant, storage: Storage) -> None:
    p, q, r = [await provider(storage, tenant, n) for n in "pqr"]
    created = (await api.post("/api/v1/routing-rules", key=tenant.key, json={
        "provider_id": str(p.id), "fallback_provider_ids": [str(q.id)], "priority": 5})).json
    path = f"/api/v1/routing-rules/{created['id']}"

    reply = await api.patch(path, key=tenant.key, json={"enabled": False, "conditions": {"sender_domain": "example.com"}})
    assert reply.status == 200, reply.body
    assert reply.json["enabled"] is False and reply.json["priority"] == 5
    assert reply.json["fallback_provider_ids"] == [str(q.id)]

    # PATCH may not make the primary one of its own fallbacks.
    reply = await api.patch(path, key=tenant.key, json={"provider_id": str(q.id)})
    assert reply.status == 422 and reply.json["field"] == "fallback_provider_ids[0]"

    reply = await api.put(path, key=tenant.key, json={"provider_id": str(r.id)})
    assert reply.status == 200
    assert (reply.json["provider_id"], reply.json["fallback_provider_ids"], reply.json["priority"],
            reply.json["conditions"], reply.json["enabled"]) == (str(r.id), [], 100, {}, True)

    reply = await api.put(path, key=tenant.key, json={"priority": 1})
    assert reply.status == 422 and reply.json["field"] == "provider_id"
    reply = await api.patch(path, key=tenant.key, json={"priority": 2**31})
    assert reply.status == 422 and reply.json["field"] == "priority"

    assert (await api.delete(path, key=tenant.key)).status == 204
    assert (await api.get(path, key=tenant.key)).status == 404


async def test_operator_creates_for_an_account(api: Api, operator_key: str, tenant: Tenant, storage: Storage) -> None:
    p = await provider(storage, tenant)
    reply = await api.post("/api/v1/routing-rules", key=operator_key,
                           json={"provider_id": str(p.id), "account_id": tenant.id})
    assert reply.status == 201 and reply.json["account_id"] == tenant.id
    reply = await api.post("/api/v1/routing-rules", key=operator_key, json={"provider_id": str(p.id)})
    assert reply.status == 422 and reply.json["field"] == "account_id"
    listed = await api.get("/api/v1/routing-rules", key=operator_key, params={"account_id": tenant.id})
    assert len(listed.json["items"]) == 1
