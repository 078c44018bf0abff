"""/api/v1/providers: per-type config validation, write-only secrets, changes."""

from __future__ import annotations

import uuid

import pytest

from relay.models import ProviderType
from relay.storage import Storage

from .conftest import Api, Tenant

CONFIGS = {
    "smtp": ({"host": "smtp.example.net", "port": 587, "tls": "starttls", "username": "u",
              "password": "smtp-secret-1"}, {"password": "smtp-secret-1"}),
    "sendgrid": ({"api_key": "SG.secret-2"}, {"api_key": "SG.secret-2"}),
    "mailgun": ({"api_key": "mg-secret-3", "domain": "mg.example.com", "region": "eu"},
                {"api_key": "mg-secret-3"}),
    "ses": ({"region": "eu-west-1", "access_key_id": "AKIAEXAMPLE",
             "secret_access_key": "ses-secret-4"}, {"secret_access_key": "ses-secret-4"}),
    "postmark": ({"server_token": "pm-secret-5"}, {"server_token": "pm-secret-5"}),
}


@pytest.mark.parametrize("kind", sorted(CONFIGS))
async def test_create_each_type_hides_secrets(api: Api, tenant: Tenant, storage: Storage, kind: str) -> None:
    config, secrets = CONFIGS[kind]
    reply = await api.post("/api/v1/providers", key=tenant.key,
                           json={"name": f"my {kind}", "type": kind, "config": config})
    assert reply.status == 201, reply.body
    body = reply.json
    assert body["type"] == kind and body["account_id"] == tenant.id and body["enabled"] is True
    for name, value in secrets.items():
        assert body["config"][name] == {"set": True}
        assert value not in reply.body.decode()
    stored = await storage.providers.get(uuid.UUID(body["id"]))
    assert stored is not None and stored.config == config  # kept whole for the worker
    again = await api.get(f"/api/v1/providers/{body['id']}", key=tenant.key)
    assert again.json == body


async def test_optional_secret_shows_unset(api: Api, tenant: Tenant) -> None:
    reply = await api.post("/api/v1/providers", key=tenant.key, json={
        "name": "relay", "type": "smtp", "config": {"host": "10.0.0.5"}})
    assert reply.status == 201, reply.body
    assert reply.json["config"] == {"host": "10.0.0.5", "password": {"set": False}}


@pytest.mark.parametrize(("kind", "settings", "field", "words"), [
    ("smtp", {}, "config.host", "required"),
    ("smtp", {"host": "bad host"}, "config.host", "host name"),
    ("smtp", {"host": "h.example", "port": 70000}, "config.port", "between 1 and 65535"),
    ("smtp", {"host": "h.example", "port": "25"}, "config.port", "whole number"),
    ("smtp", {"host": "h.example", "tls": "ssl"}, "config.tls", "one of none, starttls, implicit"),
    ("smtp", {"host": "h.example", "api_key": "x"}, "config.api_key", "unknown field"),
    ("sendgrid", {}, "config.api_key", "required"),
    ("sendgrid", {"api_key": "k", "base_url": "ftp://x"}, "config.base_url", "https://"),
    ("mailgun", {"api_key": "k"}, "config.domain", "required"),
    ("mailgun", {"api_key": "k", "domain": "mg.example.com", "region": "asia"}, "config.region", "one of us, eu"),
    ("ses", {"region": "eu-west-1", "access_key_id": "A"}, "config.secret_access_key", "required"),
    ("postmark", {"server_token": 5}, "config.server_token", "expected a string"),
    ("postmark", {"server_token": "x" * 5000}, "config.server_token", "too long"),
])
async def test_config_validated_per_type(api: Api, tenant: Tenant, kind: str, settings: dict, field: str, words: str) -> None:
    reply = await api.post("/api/v1/providers", key=tenant.key,
                           json={"name": "p", "type": kind, "config": settings})
    assert reply.status == 422, reply.body
    assert reply.json["field"] == field
    assert words in reply.json["detail"]


async def test_unknown_type_and_missing_config(api: Api, tenant: Tenant) -> None:
    reply = await api.post("/api/v1/providers", key=tenant.key, json={"name": "p", "type": "pigeon", "config": {}})
    assert reply.status == 422 and reply.json["field"] == "type"
    reply = await api.post("/api/v1/providers", key=tenant.key, json={"name": "p", "type": "smtp"})
    assert reply.status == 422 and reply.json["field"] == "config"
    reply = await api.post("/api/v1/providers", key=tenant.key, json={"name": "p", "type": "smtp", "config": []})
    assert reply.status == 422 and reply.json["field"] == "config"


async def test_operator_must_name_the_account(api: Api, operator_key: str, tenant: Tenant) -> None:
    body = {"name": "p", "type": "sendgrid", "config": {"api_key": "k"}}
    reply = await api.post("/api/v1/providers", key=operator_key, json=body)
    assert reply.status == 422 and reply.json["field"] == "account_id"
    reply = await api.post("/api/v1/providers", key=operator_key, json={**body, "account_id": str(uuid.uuid4())})
    assert reply.status == 422 and reply.json["field"] == "account_id"
    reply = await api.post("/api/v1/providers", key=operator_key, json={**body, "account_id": tenant.id})
    assert reply.status == 201 and reply.json["account_id"] == tenant.id


async def test_account_cannot_create_for_another(api: Api, tenant: Tenant, other: Tenant) -> None:
    body = {"name": "p", "type": "sendgrid", "config": {"api_key": "k"}, "account_id": other.id}
    reply = await api.post("/api/v1/providers", key=tenant.key, json=body)
    assert reply.status == 422 and reply.json["field"] == "account_id"
    assert "no account with this id" in reply.json["detail"]


async def test_put_keeps_secrets_not_sent(api: Api, tenant: Tenant, storage: Storage) -> None:
    created = (await api.post("/api/v1/providers", key=tenant.key, json={
        "name": "p", "type": "smtp", "config": CONFIGS["smtp"][0]})).json
    path = f"/api/v1/providers/{created['id']}"
    reply = await api.put(path, key=tenant.key, json={
        "name": "renamed", "type": "smtp", "config": {"host": "other.example.net"}, "enabled": False})
    assert reply.status == 200, reply.body
    assert reply.json["config"] == {"host": "other.example.net", "password": {"set": True}}
    assert reply.json["enabled"] is False and reply.json["name"] == "renamed"
    stored = await storage.providers.get(uuid.UUID(created["id"]))
    assert stored is not None and stored.config == {"host": "other.example.net", "password": "smtp-secret-1"}


async def test_patch_merges_config_and_null_removes(api: Api, tenant: Tenant, storage: Storage) -> None:
    created = (await api.post("/api/v1/providers", key=tenant.key, json={
        "name": "p", "type": "smtp", "config": CONFIGS["smtp"][0]})).json
    path = f"/api/v1/providers/{created['id']}"
    reply = await api.patch(path, key=tenant.key, json={"config": {"port": 2525, "password": None}})
    assert reply.status == 200, reply.body
    assert reply.json["config"]["port"] == 2525
    assert reply.json["config"]["host"] == "smtp.example.net"
    assert reply.json["config"]["password"] == {"set": False}
    reply = await api.patch(path, key=tenant.key, json={"config": {"host": None}})
    assert reply.status == 422 and reply.json["field"] == "config.host"
    reply = await api.patch(path, key=tenant.key, json={"name": "only name"})
    assert reply.status == 200 and reply.json["name"] == "only name"


async def test_type_change_needs_a_whole_config(api: Api, tenant: Tenant) -> None:
    created = (await api.post("/api/v1/providers", key=tenant.key, json={
        "name": "p", "type": "smtp", "config": CONFIGS["smtp"][0]})).json
    path = f"/api/v1/providers/{created['id']}"
    reply = await api.patch(path, key=tenant.key, json={"type": "sendgrid"})
    assert reply.status == 422 and reply.json["field"] == "config"
    reply = await api.patch(path, key=tenant.key, json={"type": "sendgrid", "config": {}})
    assert reply.status == 422 and reply.json["field"] == "config.api_key"  # secrets do not carry over
    reply = await api.patch(path, key=tenant.key, json={"type": "sendgrid", "config": {"api_key": "new"}})
    assert reply.status == 200 and reply.json["config"] == {"api_key": {"set": True}}


async def test_list_and_delete(api: Api, tenant: Tenant, other: Tenant, operator_key: str, storage: Storage) -> None:
    mine = await storage.providers.create(account_id=tenant.account.id, name="a", type=ProviderType.POSTMARK, config={"server_token": "t"})
    await storage.providers.create(account_id=other.account.id, name="b", type=ProviderType.POSTMARK, config={"server_token": "t"})
    reply = await api.get("/api/v1/providers", key=tenant.key)
    assert [p["id"] for p in reply.json["items"]] == [str(mine.id)]
    assert len((await api.get("/api/v1/providers", key=operator_key)).json["items"]) == 2
    only = await api.get("/api/v1/providers", key=operator_key, params={"account_id": tenant.id})
    assert [p["id"] for p in only.json["items"]] == [str(mine.id)]
    foreign = await api.get("/api/v1/providers", key=tenant.key, params={"account_id": other.id})
    assert foreign.json["items"] == []
    bad = await api.get("/api/v1/providers", key=tenant.key, params={"account_id": "x"})
    assert bad.status == 400 and bad.json["field"] == "account_id"
    assert (await api.delete(f"/api/v1/providers/{mine.id}", key=tenant.key)).status == 204
    assert (await api.get(f"/api/v1/providers/{mine.id}", key=tenant.key)).status == 404
    assert (await api.delete(f"/api/v1/providers/{mine.id}", key=tenant.key)).status == 404


async def test_health_shows_the_workers_breaker_state_to_its_tenant_only(
    api: Api, tenant: Tenant, other: Tenant, storage: Storage
) -> None:
    import datetime as dt

    from relay.storage.worker_state import HealthState, ProviderHealth

    provider = await storage.providers.create(account_id=tenant.account.id, name="up", type=ProviderType.POSTMARK,
                                              config={"server_token": "t"})
    fresh = await api.get(f"/api/v1/providers/{provider.id}/health", key=tenant.key)
    assert fresh.status == 200 and fresh.json["state"] == "closed" and fresh.json["consecutive_failures"] == 0
    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    await storage.worker_state.save_health([ProviderHealth(
        provider_id=provider.id, state=HealthState.OPEN, consecutive_failures=5, opened_until=until,
        last_error="HTTP 503 from api.postmarkapp.com", last_failure_at=until - dt.timedelta(minutes=1),
    )])
    shown = await api.get(f"/api/v1/providers/{provider.id}/health", key=tenant.key)
    assert shown.json["state"] == "open" and shown.json["consecutive_failures"] == 5
    assert shown.json["last_error"] == "HTTP 503 from api.postmarkapp.com"
    assert (await api.get(f"/api/v1/providers/{provider.id}/health", key=other.key)).status == 404
