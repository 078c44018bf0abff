"""``/api/v1/accounts/{id}/dkim-keys``: generate, import, list, enable, delete; tenancy;
the private key never leaves; 409 without a key encryption key.

Every reply is also checked against the OpenAPI document by the ``api`` fixture.
"""

from __future__ import annotations

import base64
import os
import uuid

import attrs
import dkim as dkimpy
import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from relay import dkim
from relay.config import Config, DkimConfig
from relay.storage import Storage

from .conftest import Api, Tenant, api_config

KEK = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def config() -> Config:
    return attrs.evolve(api_config(), dkim=DkimConfig(key_encryption_key=KEK))


def _path(tenant: Tenant | str, suffix: str = "") -> str:
    account = tenant if isinstance(tenant, str) else tenant.id
    return f"/api/v1/accounts/{account}/dkim-keys{suffix}"


def _pem(key: object) -> str:
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _body_of(pem: str) -> str:
    """The base64 between the PEM armour lines, joined."""
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


async def test_generate_list_get_patch_delete(api: Api, tenant: Tenant, storage: Storage) -> None:
    created = await api.post(_path(tenant), key=tenant.key,
                             json={"domain": "Example.com", "selector": "S2026"})
    assert created.status == 201, created.json
    body = created.json
    assert body["domain"] == "example.com" and body["selector"] == "s2026"
    assert body["algorithm"] == "rsa-sha256" and body["enabled"] is True
    assert body["account_id"] == tenant.id
    assert created.headers["location"] == _path(tenant, f"/{body['id']}")
    record = body["dns_record"]
    assert record["name"] == "s2026._domainkey.example.com" and record["type"] == "TXT"
    assert record["value"].startswith("v=DKIM1; k=rsa; p=")

    ed = await api.post(_path(tenant), key=tenant.key,
                        json={"domain": "example.com", "selector": "ed", "algorithm": "ed25519-sha256"})
    assert ed.status == 201 and ed.json["dns_record"]["value"].startswith("v=DKIM1; k=ed25519; p=")

    listed = await api.get(_path(tenant), key=tenant.key)
    assert [k["id"] for k in listed.json["items"]] == [body["id"], ed.json["id"]]
    assert (await api.get(_path(tenant, f"/{body['id']}"), key=tenant.key)).json == body

    off = await api.patch(_path(tenant, f"/{body['id']}"), key=tenant.key, json={"enabled": False})
    assert off.status == 200 and off.json["enabled"] is False
    assert [k.id for k in await storage.dkim_keys.enabled_for_account(tenant.account.id)] == [
        uuid.UUID(ed.json["id"])]
    bad = await api.patch(_path(tenant, f"/{body['id']}"), key=tenant.key, json={"enabled": "no"})
    assert bad.status == 422 and bad.json["field"] == "enabled"

    assert (await api.delete(_path(tenant, f"/{body['id']}"), key=tenant.key)).status == 204
    assert (await api.get(_path(tenant, f"/{body['id']}"), key=tenant.key)).status == 404
    assert (await api.delete(_path(tenant, f"/{body['id']}"), key=tenant.key)).status == 404

    # The stored private key is encrypted (AES-GCM under the KEK, bound to the key's id).
    [stored] = await storage.dkim_keys.list(account_id=tenant.account.id)
    kek = dkim.KeyEncryption.from_setting(KEK)
    assert kek is not None
    seed = kek.decrypt(stored.private_key, key_id=stored.id.bytes)
    assert seed not in stored.private_key and len(base64.b64decode(seed)) == 32


async def test_generated_key_signs_and_its_record_verifies(api: Api, tenant: Tenant, storage: Storage) -> None:
    for algorithm in dkim.ALGORITHMS:
        reply = await api.post(_path(tenant), key=tenant.key, json={
            "domain": "example.com", "selector": algorithm[:3], "algorithm": algorithm})
        [row] = [k for k in await storage.dkim_keys.list(account_id=tenant.account.id)
                 if str(k.id) == reply.json["id"]]
        kek = dkim.KeyEncryption.from_setting(KEK)
        assert kek is not None
        key = dkim.SigningKey(row.domain, row.selector, row.algorithm,
                              kek.decrypt(row.private_key, key_id=row.id.bytes))
        message = b"From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n"
        record = reply.json["dns_record"]

        def lookup(name: bytes, timeout: float = 5, record: dict[str, str] = record) -> bytes | None:
            return record["value"].encode() if name == f"{record['name']}.".encode() else None

        assert dkimpy.verify(dkim.sign(message, [key]) + message, dnsfunc=lookup)


async def test_import_pem_and_the_key_never_comes_back(api: Api, tenant: Tenant) -> None:
    capture = structlog.testing.capture_logs()
    pems = [_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            _pem(ed25519.Ed25519PrivateKey.generate())]
    with capture as lines:
        for i, pem in enumerate(pems):
            reply = await api.post(_path(tenant), key=tenant.key, json={
                "domain": "example.com", "selector": f"imp{i}", "private_key": pem})
            assert reply.status == 201, reply.json
            assert "private_key" not in reply.json
        mismatch = await api.post(_path(tenant), key=tenant.key, json={
            "domain": "example.com", "selector": "x", "private_key": pems[1], "algorithm": "rsa-sha256"})
        assert mismatch.status == 422 and mismatch.json["field"] == "algorithm"
        damaged = await api.post(_path(tenant), key=tenant.key, json={
            "domain": "example.com", "selector": "x", "private_key": pems[0][:500]})
        assert damaged.status == 422 and damaged.json["field"] == "private_key"
        assert "not a PEM private key" in damaged.json["detail"]
        await api.get(_path(tenant), key=tenant.key)
    assert [r.json["algorithm"] for r in api.replies[:2]] == ["rsa-sha256", "ed25519-sha256"]
    everything = b"".join(r.body + str(r.headers).encode() for r in api.replies).decode()
    logged = repr(lines)
    for pem in pems:
        body = _body_of(pem)
        for text in (everything, logged):
            assert body[:40] not in text and body[-40:] not in text
            for line in pem.splitlines()[1:-1]:
                assert line not in text


@pytest.mark.parametrize(("body", "field", "says"), [
    ({"domain": "example.org", "selector": "s"}, "domain", "not one of this account's allowed_domains"),
    ({"domain": "notexample.com", "selector": "s"}, "domain", "allowed_domains"),
    ({"domain": "not a domain", "selector": "s"}, "domain", "is not a domain name"),
    ({"domain": "example.com", "selector": "bad_selector"}, "selector", "expected a selector"),
    ({"domain": "example.com"}, "selector", "is required"),
    ({"domain": "example.com", "selector": "s", "algorithm": "rsa-sha1"}, "algorithm", "must be one of"),
    ({"domain": "example.com", "selector": "s", "enabled": False}, "enabled", "unknown field"),
])
async def test_invalid_bodies_are_422(
    api: Api, tenant: Tenant, body: dict[str, object], field: str, says: str
) -> None:
    reply = await api.post(_path(tenant), key=tenant.key, json=body)
    assert reply.status == 422, reply.json
    assert reply.json["field"] == field and says in reply.json["detail"]


async def test_wildcard_allowed_domain_allows_subdomains(
    api: Api, tenant: Tenant, storage: Storage
) -> None:
    await storage.accounts.update(tenant.account.id, allowed_domains=["*.example.org"])
    for domain in ("example.org", "mail.example.org"):
        reply = await api.post(_path(tenant), key=tenant.key, json={"domain": domain, "selector": "s1"})
        assert reply.status == 201, reply.json


async def test_selector_taken_is_409_across_accounts(
    api: Api, tenant: Tenant, other: Tenant
) -> None:
    first = await api.post(_path(other), key=other.key, json={"domain": "example.com", "selector": "s1"})
    assert first.status == 201
    reply = await api.post(_path(tenant), key=tenant.key, json={"domain": "example.com", "selector": "s1"})
    assert reply.status == 409 and reply.json["field"] == "selector"
    assert "choose another selector" in reply.json["detail"]
    assert other.id not in reply.body.decode() and first.json["id"] not in reply.body.decode()


async def test_another_tenants_keys_are_404(api: Api, tenant: Tenant, other: Tenant) -> None:
    theirs = (await api.post(_path(other), key=other.key,
                             json={"domain": "example.com", "selector": "theirs"})).json
    foreign = [
        ("GET", _path(other)), ("POST", _path(other)),
        ("GET", _path(other, f"/{theirs['id']}")), ("PATCH", _path(other, f"/{theirs['id']}")),
        ("DELETE", _path(other, f"/{theirs['id']}")),
        ("GET", _path(tenant, f"/{theirs['id']}")), ("PATCH", _path(tenant, f"/{theirs['id']}")),
        ("DELETE", _path(tenant, f"/{theirs['id']}")),
    ]
    for method, path in foreign:
        kwargs = ({"json": {"domain": "example.com", "selector": "mine"}} if method == "POST"
                  else {"json": {"enabled": False}} if method == "PATCH" else {})
        reply = await api.request(method, path, key=tenant.key, **kwargs)
        assert reply.status == 404, (method, path)
        assert theirs["id"] not in reply.body.decode()
    still = await api.get(_path(other, f"/{theirs['id']}"), key=other.key)
    assert still.json["enabled"] is True


async def test_operator_manages_any_account(api: Api, tenant: Tenant, operator_key: str) -> None:
    created = await api.post(_path(tenant), key=operator_key, json={
        "domain": "example.com", "selector": "op", "algorithm": "ed25519-sha256"})
    assert created.status == 201 and created.json["account_id"] == tenant.id
    assert [k["id"] for k in (await api.get(_path(tenant), key=tenant.key)).json["items"]] == [
        created.json["id"]]
    assert (await api.get(_path(str(uuid.uuid4())), key=operator_key)).status == 404


async def test_at_most_max_per_account(
    api: Api, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relay.api import dkim_keys

    monkeypatch.setattr(dkim_keys, "MAX_PER_ACCOUNT", 2)
    for i in range(2):
        reply = await api.post(_path(tenant), key=tenant.key, json={
            "domain": "example.com", "selector": f"s{i}", "algorithm": "ed25519-sha256"})
        assert reply.status == 201
    reply = await api.post(_path(tenant), key=tenant.key, json={
        "domain": "example.com", "selector": "s9", "algorithm": "ed25519-sha256"})
    assert reply.status == 409 and "the most allowed" in reply.json["detail"]


class TestWithoutKek:
    @pytest.fixture
    def config(self) -> Config:
        return api_config()

    async def test_create_is_409_saying_what_to_set(self, api: Api, tenant: Tenant) -> None:
        for body in ({"domain": "example.com", "selector": "s1"},
                     {"domain": "example.com", "selector": "s1",
                      "private_key": _pem(ed25519.Ed25519PrivateKey.generate())}):
            reply = await api.post(_path(tenant), key=tenant.key, json=body)
            assert reply.status == 409
            assert reply.json["type"] == "urn:relay:problem:dkim-not-configured"
            detail = reply.json["detail"]
            assert "dkim.key_encryption_key" in detail and "RELAY_DKIM__KEY_ENCRYPTION_KEY" in detail
            assert "base64.b64encode(os.urandom(32))" in detail
        assert (await api.get(_path(tenant), key=tenant.key)).json["items"] == []
