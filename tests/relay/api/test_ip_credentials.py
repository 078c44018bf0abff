"""``/api/v1/accounts/{id}/ip-credentials``: validation, tenancy and the overlap 409.

Every reply is also checked against the OpenAPI document by the ``api`` fixture.
"""

from __future__ import annotations

import uuid

import pytest

from relay import networks
from relay.storage import Storage

from .conftest import Api, Tenant, make_tenant


def _path(tenant: Tenant | str, suffix: str = "") -> str:
    account = tenant if isinstance(tenant, str) else tenant.id
    return f"/api/v1/accounts/{account}/ip-credentials{suffix}"


async def test_create_list_get_delete_with_the_accounts_key(api: Api, tenant: Tenant) -> None:
    created = await api.post(
        _path(tenant), key=tenant.key, json={"network": "192.0.2.77/24", "description": "web"}
    )
    assert created.status == 201, created.json
    body = created.json
    assert body["network"] == "192.0.2.0/24"  # canonical: host bits cleared
    assert body["description"] == "web" and body["account_id"] == tenant.id
    assert created.headers["location"] == _path(tenant, f"/{body['id']}")

    v6 = await api.post(_path(tenant), key=tenant.key, json={"network": "2001:DB8::1"})
    assert v6.status == 201 and v6.json["network"] == "2001:db8::1/128"
    assert v6.json["description"] == ""

    listed = await api.get(_path(tenant), key=tenant.key)
    assert [c["id"] for c in listed.json["items"]] == [body["id"], v6.json["id"]]
    got = await api.get(_path(tenant, f"/{body['id']}"), key=tenant.key)
    assert got.status == 200 and got.json == body

    assert (await api.delete(_path(tenant, f"/{body['id']}"), key=tenant.key)).status == 204
    assert (await api.get(_path(tenant, f"/{body['id']}"), key=tenant.key)).status == 404
    assert (await api.delete(_path(tenant, f"/{body['id']}"), key=tenant.key)).status == 404


@pytest.mark.parametrize(("network", "says"), [
    ("0.0.0.0/0", "open relay"),
    ("::/0", "open relay"),
    ("10.0.0.0/7", "/8 or longer"),
    ("2001:db8::/31", "/32 or longer"),
    ("::ffff:10.0.0.0/104", "write it as an IPv4 network"),
    ("not a network", "is not an IP network"),
    ("10.0.0.0/33", "is not an IP network"),
    (42, "expected a CIDR network"),
])
async def test_invalid_networks_are_422_naming_the_field(
    api: Api, tenant: Tenant, network: object, says: str
) -> None:
    reply = await api.post(_path(tenant), key=tenant.key, json={"network": network})
    assert reply.status == 422
    assert reply.json["field"] == "network" and says in reply.json["detail"]
    assert (await api.get(_path(tenant), key=tenant.key)).json["items"] == []


async def test_network_is_required_and_unknown_fields_refused(api: Api, tenant: Tenant) -> None:
    assert (await api.post(_path(tenant), key=tenant.key, json={})).json["field"] == "network"
    reply = await api.post(
        _path(tenant), key=tenant.key, json={"network": "192.0.2.0/24", "account_id": tenant.id}
    )
    assert reply.status == 422 and reply.json["field"] == "account_id"


async def test_overlap_with_another_account_is_409_without_naming_it(
    api: Api, tenant: Tenant, other: Tenant, operator_key: str
) -> None:
    theirs = await api.post(_path(other), key=other.key, json={"network": "10.20.0.0/16"})
    assert theirs.status == 201

    reply = await api.post(_path(tenant), key=tenant.key, json={"network": "10.20.30.0/24"})
    assert reply.status == 409 and reply.json["field"] == "network"
    assert "overlaps another account's IP credential" in reply.json["detail"]
    text = reply.body.decode()
    assert other.id not in text and theirs.json["id"] not in text and "10.20.0.0/16" not in text

    # An operator is told which.
    told = await api.post(_path(tenant), key=operator_key, json={"network": "10.20.30.0/24"})
    assert told.status == 409
    assert other.id in told.json["detail"] and "10.20.0.0/16" in told.json["detail"]
    assert (await api.get(_path(tenant), key=tenant.key)).json["items"] == []


async def test_duplicate_and_overlap_within_the_account_are_409_naming_it(
    api: Api, tenant: Tenant
) -> None:
    first = await api.post(_path(tenant), key=tenant.key, json={"network": "192.0.2.0/24"})
    dup = await api.post(_path(tenant), key=tenant.key, json={"network": "192.0.2.9/24"})
    assert dup.status == 409 and "already an IP credential of this account" in dup.json["detail"]
    inner = await api.post(_path(tenant), key=tenant.key, json={"network": "192.0.2.128/25"})
    assert inner.status == 409
    assert "overlaps this account's IP credential 192.0.2.0/24" in inner.json["detail"]
    assert first.json["id"] in inner.json["detail"]


async def test_another_tenants_credentials_are_404(
    api: Api, tenant: Tenant, other: Tenant, storage: Storage
) -> None:
    theirs = (await api.post(_path(other), key=other.key, json={"network": "198.51.100.0/24"})).json
    foreign_requests = [
        ("GET", _path(other)),
        ("POST", _path(other)),
        ("GET", _path(other, f"/{theirs['id']}")),
        ("DELETE", _path(other, f"/{theirs['id']}")),
        # Their credential under my account's path is no better.
        ("GET", _path(tenant, f"/{theirs['id']}")),
        ("DELETE", _path(tenant, f"/{theirs['id']}")),
    ]
    for method, path in foreign_requests:
        kwargs = {"json": {"network": "203.0.113.0/24"}} if method == "POST" else {}
        reply = await api.request(method, path, key=tenant.key, **kwargs)
        assert reply.status == 404, (method, path)
        assert theirs["id"] not in reply.body.decode()
    missing = await api.get(_path(str(uuid.uuid4())), key=tenant.key)
    assert missing.json["detail"] == (await api.get(_path(other), key=tenant.key)).json["detail"]
    assert [c.id for c in await storage.ip_credentials.list()] == [uuid.UUID(theirs["id"])]


async def test_operator_manages_any_account(api: Api, tenant: Tenant, operator_key: str) -> None:
    created = await api.post(_path(tenant), key=operator_key, json={"network": "203.0.113.0/28"})
    assert created.status == 201 and created.json["account_id"] == tenant.id
    assert [c["id"] for c in (await api.get(_path(tenant), key=tenant.key)).json["items"]] == [
        created.json["id"]
    ]
    assert (await api.delete(_path(tenant, f"/{created.json['id']}"), key=operator_key)).status == 204
    assert (await api.get(_path(str(uuid.uuid4())), key=operator_key)).status == 404


async def test_at_most_max_per_account(
    api: Api, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(networks, "MAX_PER_ACCOUNT", 2)
    tenant = await make_tenant(storage)
    for i in range(2):
        assert (await api.post(_path(tenant), key=tenant.key, json={"network": f"192.0.2.{i}"})).status == 201
    reply = await api.post(_path(tenant), key=tenant.key, json={"network": "192.0.2.9"})
    assert reply.status == 409 and "at most" not in reply.json["detail"]
    assert "the most allowed" in reply.json["detail"]
