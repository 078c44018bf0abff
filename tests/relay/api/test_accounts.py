"""/api/v1/accounts: creation, listing, changes, deletion, key rotation."""

from __future__ import annotations

import uuid

import pytest

from relay import hashed_secrets
from relay.storage import Storage

from .conftest import Api, Tenant, make_tenant

NEW = {
    "name": "Acme",
    "email": "ops@acme.example",
    "password": "s3cret-passw0rd",
    "allowed_domains": ["acme.example", "*.acme.example"],
}


async def test_create_returns_account_and_key_once(api: Api, operator_key: str, storage: Storage) -> None:
    reply = await api.post("/api/v1/accounts", key=operator_key, json=NEW)
    assert reply.status == 201, reply.body
    body = reply.json
    assert body["email"] == "ops@acme.example"
    assert body["allowed_domains"] == ["acme.example", "*.acme.example"]
    assert body["api_key"].startswith(hashed_secrets.ACCOUNT_KEY_PREFIX)
    assert body["api_key"].startswith(body["api_key_prefix"])
    assert reply.headers["location"] == f"/api/v1/accounts/{body['id']}"
    assert NEW["password"] not in reply.body.decode()
    assert "password" not in reply.body.decode()

    stored = await storage.accounts.get(uuid.UUID(body["id"]))
    assert stored is not None
    assert stored.password_hash.startswith("$2b$12$")  # real bcrypt, default cost
    assert hashed_secrets.check_password(NEW["password"], stored.password_hash)

    # The key works at once, and is never shown again.
    own = await api.get(f"/api/v1/accounts/{body['id']}", key=body["api_key"])
    assert own.status == 200
    assert "api_key" not in own.json


async def test_create_with_limits(api: Api, operator_key: str) -> None:
    reply = await api.post("/api/v1/accounts", key=operator_key, json={
        **NEW, "messages_per_minute": 10, "recipients_per_hour": 0, "disabled": True,
    })
    assert reply.status == 201, reply.body
    assert (reply.json["messages_per_minute"], reply.json["recipients_per_hour"], reply.json["disabled"]) == (10, 0, True)


async def test_duplicate_email_is_409_case_insensitively(api: Api, operator_key: str, tenant: Tenant) -> None:
    reply = await api.post("/api/v1/accounts", key=operator_key,
                           json={**NEW, "email": tenant.account.email.upper()})
    assert reply.status == 409
    assert reply.json["field"] == "email"
    assert "already exists" in reply.json["detail"]


async def test_duplicate_email_on_change_is_409(api: Api, operator_key: str, tenant: Tenant, other: Tenant) -> None:
    reply = await api.patch(f"/api/v1/accounts/{tenant.id}", key=operator_key,
                            json={"email": other.account.email})
    assert reply.status == 409
    assert reply.json["field"] == "email"


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"surname": "x"}, "surname", "unknown field"),
    ({"name": 5}, "name", "expected a string"),
    ({"name": ""}, "name", "must not be empty"),
    ({"name": "x" * 201}, "name", "too long"),
    ({"email": "not-an-email"}, "email", "not an email address"),
    ({"email": "a@b"}, "email", "not an email address"),
    ({"email": "a b@example.com"}, "email", "not an email address"),
    ({"email": "x" * 250 + "@example.com"}, "email", "not an email address"),
    ({"password": "short"}, "password", "too short"),
    ({"password": "é" * 37}, "password", "at most 72 bytes"),
    ({"password": None}, "password", "expected a string"),
    ({"allowed_domains": "acme.example"}, "allowed_domains", "expected a list"),
    ({"allowed_domains": ["acme..example"]}, "allowed_domains[0]", "not a domain name"),
    ({"allowed_domains": ["ok.example", "-bad.example"]}, "allowed_domains[1]", "not a domain name"),
    ({"allowed_domains": ["ok.example", "OK.example"]}, "allowed_domains[1]", "listed twice"),
    ({"allowed_domains": [f"d{i}.example" for i in range(101)]}, "allowed_domains", "too many"),
    ({"messages_per_minute": -1}, "messages_per_minute", "between"),
    ({"messages_per_minute": 1.5}, "messages_per_minute", "whole number"),
    ({"messages_per_minute": True}, "messages_per_minute", "whole number"),
    ({"disabled": "yes"}, "disabled", "true or false"),
])
async def test_create_refuses_bad_fields(api: Api, operator_key: str, change: dict, field: str, words: str) -> None:
    reply = await api.post("/api/v1/accounts", key=operator_key, json={**NEW, **change})
    assert reply.status == 422, reply.body
    assert reply.json["field"] == field
    assert reply.json["detail"].startswith(field + ":")
    assert words in reply.json["detail"]


async def test_create_requires_fields(api: Api, operator_key: str) -> None:
    reply = await api.post("/api/v1/accounts", key=operator_key, json={"name": "x", "email": "a@acme.example"})
    assert reply.status == 422
    assert reply.json["field"] == "password"
    assert "required" in reply.json["detail"]


async def test_only_operators_create_list_and_delete(api: Api, tenant: Tenant) -> None:
    assert (await api.post("/api/v1/accounts", key=tenant.key, json=NEW)).status == 403
    assert (await api.get("/api/v1/accounts", key=tenant.key)).status == 403
    reply = await api.delete(f"/api/v1/accounts/{tenant.id}", key=tenant.key)
    assert reply.status == 403
    assert (await api.get(f"/api/v1/accounts/{tenant.id}", key=tenant.key)).status == 200


async def test_list_pages_by_id(api: Api, operator_key: str, storage: Storage) -> None:
    tenants = [await make_tenant(storage) for _ in range(5)]
    ids = sorted(t.id for t in tenants)
    seen: list[str] = []
    after = None
    while True:
        params = {"limit": "2", **({"after": after} if after else {})}
        reply = await api.get("/api/v1/accounts", key=operator_key, params=params)
        assert reply.status == 200
        seen += [a["id"] for a in reply.json["items"]]
        after = reply.json["next_after"]
        if after is None:
            break
    assert seen == ids
    bad = await api.get("/api/v1/accounts", key=operator_key, params={"limit": "0"})
    assert bad.status == 400 and bad.json["field"] == "limit"
    bad = await api.get("/api/v1/accounts", key=operator_key, params={"after": "nope"})
    assert bad.status == 400 and bad.json["field"] == "after"
    bad = await api.get("/api/v1/accounts", key=operator_key, params={"sort": "name"})
    assert bad.status == 400 and bad.json["field"] == "sort"


async def test_get_shows_no_secret(api: Api, tenant: Tenant) -> None:
    reply = await api.get(f"/api/v1/accounts/{tenant.id}", key=tenant.key)
    assert reply.status == 200
    assert set(reply.json) == {
        "id", "name", "email", "allowed_domains", "disabled", "messages_per_minute",
        "recipients_per_hour", "default_provider_id", "api_key_prefix", "created_at", "updated_at",
    }
    assert tenant.key not in reply.body.decode()


async def test_put_replaces_and_patch_changes(api: Api, operator_key: str, tenant: Tenant) -> None:
    path = f"/api/v1/accounts/{tenant.id}"
    reply = await api.put(path, key=operator_key, json={
        "name": "Renamed", "email": "new@acme.example", "messages_per_minute": 5,
    })
    assert reply.status == 200, reply.body
    body = reply.json
    assert (body["name"], body["email"], body["messages_per_minute"]) == ("Renamed", "new@acme.example", 5)
    assert body["allowed_domains"] == []  # PUT resets what it omits

    reply = await api.patch(path, key=operator_key, json={"allowed_domains": ["acme.example"]})
    assert reply.status == 200
    assert reply.json["name"] == "Renamed"
    assert reply.json["allowed_domains"] == ["acme.example"]
    assert reply.json["messages_per_minute"] == 5

    assert (await api.patch(path, key=operator_key, json={})).status == 422
    assert (await api.put(path, key=operator_key, json={"name": "x"})).json["field"] == "email"


async def test_password_change_is_hashed(api: Api, tenant: Tenant, storage: Storage) -> None:
    reply = await api.patch(f"/api/v1/accounts/{tenant.id}", key=tenant.key,
                            json={"password": "a brand new one"})
    assert reply.status == 200
    stored = await storage.accounts.get(tenant.account.id)
    assert stored is not None and hashed_secrets.check_password("a brand new one", stored.password_hash)


async def test_account_key_cannot_change_operator_fields(api: Api, tenant: Tenant) -> None:
    path = f"/api/v1/accounts/{tenant.id}"
    for change in ({"allowed_domains": ["evil.example"]}, {"messages_per_minute": 0},
                   {"recipients_per_hour": 100}, {"disabled": True}):
        reply = await api.patch(path, key=tenant.key, json=change)
        assert reply.status == 403, change
        assert reply.json["field"] == next(iter(change))
    # Unchanged values are fine, so a GET-modify-PUT round trip works.
    current = (await api.get(path, key=tenant.key)).json
    body = {k: current[k] for k in ("name", "email", "allowed_domains", "disabled",
                                    "messages_per_minute", "recipients_per_hour", "default_provider_id")}
    reply = await api.put(path, key=tenant.key, json={**body, "name": "Mine"})
    assert reply.status == 200, reply.body
    assert reply.json["name"] == "Mine"


async def test_default_provider_must_be_own(api: Api, tenant: Tenant, other: Tenant, storage: Storage) -> None:
    from relay.models import ProviderType

    mine = await storage.providers.create(account_id=tenant.account.id, name="p", type=ProviderType.SENDGRID, config={"api_key": "k"})
    theirs = await storage.providers.create(account_id=other.account.id, name="p", type=ProviderType.SENDGRID, config={"api_key": "k"})
    path = f"/api/v1/accounts/{tenant.id}"
    reply = await api.patch(path, key=tenant.key, json={"default_provider_id": str(theirs.id)})
    assert reply.status == 422 and reply.json["field"] == "default_provider_id"
    reply = await api.patch(path, key=tenant.key, json={"default_provider_id": str(mine.id)})
    assert reply.status == 200 and reply.json["default_provider_id"] == str(mine.id)
    reply = await api.patch(path, key=tenant.key, json={"default_provider_id": None})
    assert reply.status == 200 and reply.json["default_provider_id"] is None


async def test_delete(api: Api, operator_key: str, tenant: Tenant) -> None:
    path = f"/api/v1/accounts/{tenant.id}"
    assert (await api.delete(path, key=operator_key)).status == 204
    assert (await api.get(path, key=operator_key)).status == 404
    assert (await api.delete(path, key=operator_key)).status == 404
    # Its key died with it.
    assert (await api.get(path, key=tenant.key)).status == 401


async def test_rotate_key_stops_the_old_key_at_once(api: Api, tenant: Tenant) -> None:
    path = f"/api/v1/accounts/{tenant.id}"
    reply = await api.post(path + "/rotate-key", key=tenant.key)
    assert reply.status == 200, reply.body
    new_key = reply.json["api_key"]
    assert new_key.startswith(hashed_secrets.ACCOUNT_KEY_PREFIX) and new_key != tenant.key
    old = await api.get(path, key=tenant.key)
    assert old.status == 401
    assert old.headers["www-authenticate"].startswith("Bearer")
    fresh = await api.get(path, key=new_key)
    assert fresh.status == 200
    assert fresh.json["api_key_prefix"] == reply.json["api_key_prefix"] == new_key[:16]


async def test_operator_rotates_any_key(api: Api, operator_key: str, tenant: Tenant) -> None:
    reply = await api.post(f"/api/v1/accounts/{tenant.id}/rotate-key", key=operator_key)
    assert reply.status == 200
    assert (await api.get(f"/api/v1/accounts/{tenant.id}", key=tenant.key)).status == 401
    missing = await api.post(f"/api/v1/accounts/{uuid.uuid4()}/rotate-key", key=operator_key)
    assert missing.status == 404


async def test_disabled_account_is_refused(api: Api, storage: Storage) -> None:
    tenant = await make_tenant(storage, disabled=True)
    reply = await api.get(f"/api/v1/accounts/{tenant.id}", key=tenant.key)
    assert reply.status == 403
    assert "disabled" in reply.json["detail"]
