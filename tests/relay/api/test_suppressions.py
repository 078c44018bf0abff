"""``/api/v1/accounts/{id}/suppressions``: upsert, validation, paging and tenancy.

Every reply is also checked against the OpenAPI document by the ``api`` fixture.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from relay import models
from relay.models import MessageStatus
from relay.storage import Bounce, Finish, Storage

from .conftest import Api, Tenant


def _path(tenant: Tenant | str, suffix: str = "") -> str:
    account = tenant if isinstance(tenant, str) else tenant.id
    return f"/api/v1/accounts/{account}/suppressions{suffix}"


def _future(hours: float = 1) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)).isoformat()


async def test_create_refresh_get_delete_with_the_accounts_key(api: Api, tenant: Tenant) -> None:
    created = await api.post(_path(tenant), key=tenant.key,
                             json={"address": "Bob@example.net", "reason": "asked us to stop"})
    assert created.status == 201, created.json
    body = created.json
    assert (body["address"], body["reason"], body["source"]) == ("Bob@example.net", "asked us to stop", "manual")
    assert body["expires_at"] is None and body["account_id"] == tenant.id
    assert created.headers["location"] == _path(tenant, f"/{body['id']}")

    expiry = _future()
    again = await api.post(_path(tenant), key=tenant.key,
                           json={"address": "bob@EXAMPLE.net", "reason": "again", "expires_at": expiry})
    assert again.status == 200  # listed already: refreshed, not a conflict
    assert again.json["id"] == body["id"] and again.json["address"] == "Bob@example.net"
    assert again.json["reason"] == "again"
    assert dt.datetime.fromisoformat(again.json["expires_at"]) == dt.datetime.fromisoformat(expiry)

    got = await api.get(_path(tenant, f"/{body['id']}"), key=tenant.key)
    assert got.status == 200 and got.json == again.json
    assert (await api.delete(_path(tenant, f"/{body['id']}"), key=tenant.key)).status == 204
    assert (await api.get(_path(tenant, f"/{body['id']}"), key=tenant.key)).status == 404
    assert (await api.delete(_path(tenant, f"/{body['id']}"), key=tenant.key)).status == 404


@pytest.mark.parametrize(("body", "field"), [
    ({}, "address"),
    ({"address": "not an address"}, "address"),
    ({"address": "a@b"}, "address"),
    ({"address": 7}, "address"),
    ({"address": "a@example.net", "reason": "x" * 501}, "reason"),
    ({"address": "a@example.net", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"address": "a@example.net", "expires_at": "tomorrow"}, "expires_at"),
    ({"address": "a@example.net", "expires_at": "2100-01-01T00:00:00"}, "expires_at"),
    ({"address": "a@example.net", "source": "bounce"}, "source"),
])
async def test_invalid_bodies_are_422_naming_the_field(
    api: Api, tenant: Tenant, body: dict[str, object], field: str
) -> None:
    reply = await api.post(_path(tenant), key=tenant.key, json=body)
    assert reply.status == 422, reply.json
    assert reply.json["field"] == field


async def test_another_tenant_sees_nothing(api: Api, tenant: Tenant, other: Tenant) -> None:
    mine = (await api.post(_path(tenant), key=tenant.key, json={"address": "x@example.net"})).json
    assert (await api.get(_path(tenant), key=other.key)).status == 404
    assert (await api.post(_path(tenant), key=other.key, json={"address": "y@example.net"})).status == 404
    assert (await api.get(_path(tenant, f"/{mine['id']}"), key=other.key)).status == 404
    assert (await api.delete(_path(tenant, f"/{mine['id']}"), key=other.key)).status == 404
    # Its own account's path with another account's entry id: 404 too.
    assert (await api.get(_path(other, f"/{mine['id']}"), key=other.key)).status == 404
    assert (await api.delete(_path(other, f"/{mine['id']}"), key=other.key)).status == 404
    assert (await api.get(_path(other), key=other.key)).json["items"] == []
    assert (await api.get(_path(tenant, f"/{mine['id']}"), key=tenant.key)).status == 200


async def test_operator_manages_any_account_and_unknown_accounts_are_404(
    api: Api, tenant: Tenant, operator_key: str
) -> None:
    created = await api.post(_path(tenant), key=operator_key, json={"address": "op@example.net"})
    assert created.status == 201 and created.json["account_id"] == tenant.id
    listed = await api.get(_path(tenant), key=operator_key)
    assert [e["id"] for e in listed.json["items"]] == [created.json["id"]]
    assert (await api.get(_path(str(uuid.uuid4())), key=operator_key)).status == 404
    assert (await api.post(_path(str(uuid.uuid4())), key=operator_key,
                           json={"address": "op@example.net"})).status == 404


async def test_list_pages_newest_first_and_filters(api: Api, tenant: Tenant) -> None:
    ids = []
    for i in range(5):
        reply = await api.post(_path(tenant), key=tenant.key, json={"address": f"user{i}@example.net"})
        ids.append(reply.json["id"])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await api.get(_path(tenant, query), key=tenant.key)
        assert page.status == 200
        seen += [e["id"] for e in page.json["items"]]
        pages += 1
        cursor = page.json["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and sorted(seen) == sorted(ids) and len(seen) == 5
    created = [(await api.get(_path(tenant, f"/{i}"), key=tenant.key)).json["created_at"] for i in seen]
    assert created == sorted(created, reverse=True)

    only = await api.get(_path(tenant, "?address=USER3"), key=tenant.key)
    assert [e["id"] for e in only.json["items"]] == [ids[3]]
    assert (await api.get(_path(tenant, "?source=bounce"), key=tenant.key)).json["items"] == []
    assert len((await api.get(_path(tenant, "?source=manual"), key=tenant.key)).json["items"]) == 5


async def test_bounce_entries_show_the_remotes_words(api: Api, tenant: Tenant, storage: Storage) -> None:
    account_id = uuid.UUID(tenant.id)
    [message_id] = await storage.messages.enqueue_many([_message(account_id)])
    [claimed] = await storage.messages.claim(worker_id="w", limit=1, lock_seconds=60)
    await storage.messages.finish("w", [Finish(
        message_id, MessageStatus.FAILED, error="refused", attempt=claimed.attempts,
        suppress=(Bounce(account_id, "gone@example.net", "550 5.1.1 no such user", message_id),),
    )])
    [entry] = (await api.get(_path(tenant, "?source=bounce"), key=tenant.key)).json["items"]
    assert entry["address"] == "gone@example.net" and entry["source"] == "bounce"
    assert entry["response"] == "550 5.1.1 no such user" and entry["message_id"] == str(message_id)


def _message(account_id: uuid.UUID) -> models.NewMessage:
    return models.NewMessage(
        account_id=account_id, mail_from="app@example.com", rcpt_to=("gone@example.net",),
        raw=b"Subject: s\r\n\r\nx\r\n", message_id="<m@example.com>", client_ip="127.0.0.1",
        tls=True, correlation_id="c",
    )


@pytest.mark.parametrize(("query", "field"), [
    ("?limit=0", "limit"),
    ("?limit=201", "limit"),
    ("?source=spam", "source"),
    ("?cursor=nonsense", "cursor"),
    ("?address=", "address"),
    ("?status=failed", "status"),
])
async def test_bad_query_is_400_naming_the_parameter(
    api: Api, tenant: Tenant, query: str, field: str
) -> None:
    reply = await api.get(_path(tenant, query), key=tenant.key)
    assert reply.status == 400 and reply.json["field"] == field
