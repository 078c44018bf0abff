"""``/api/v1/accounts/{id}/webhooks``: secrets shown twice only, URL policy, the cap,
tenancy, deliveries and their paging, and the outbox fed by stored messages.

Every reply is also checked against the OpenAPI document by the ``api`` fixture.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import attrs
import pytest

from relay import models
from relay.api import webhooks
from relay.config import Config, WebhooksConfig
from relay.storage import Storage

from .conftest import Api, Tenant, api_config, make_tenant

URL = "https://hooks.example.com/relay"
#: The test app's configuration with both URL relaxations switched on.
PERMISSIVE = attrs.evolve(
    api_config(), webhooks=WebhooksConfig(allow_http=True, allow_private_networks=True)
)
PRIVATE_URLS = [
    "https://127.0.0.1/x",
    "https://10.0.0.1/",
    "https://169.254.169.254/",
    "https://[::1]/",
]


def _path(tenant: Tenant | str, suffix: str = "") -> str:
    account = tenant if isinstance(tenant, str) else tenant.id
    return f"/api/v1/accounts/{account}/webhooks{suffix}"


async def _create(api: Api, tenant: Tenant, key: str | None = None, **fields: Any) -> dict[str, Any]:
    body = {"url": URL, "events": ["message.sent"], **fields}
    reply = await api.post(_path(tenant), key=key or tenant.key, json=body)
    assert reply.status == 201, reply.json
    return reply.json  # type: ignore[no-any-return]


async def _count(storage: Storage, table: str) -> int:
    async def count(conn: Any) -> int:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")  # type: ignore[no-any-return]

    return await storage._bridge.run(count)


def _message(account_id: str) -> models.NewMessage:
    return models.NewMessage(
        account_id=uuid.UUID(account_id), mail_from="sender@example.com",
        rcpt_to=("a@example.net",), raw=b"Subject: hi\r\n\r\nhello\r\n",
        message_id="<m@example.com>", client_ip="127.0.0.1", tls=True, correlation_id="c-1",
    )


# ---------------------------------------------------------------- the secret


@pytest.mark.parametrize("who", ["account", "operator"])
async def test_create_answers_201_with_location_and_the_secret_only_then(
    api: Api, tenant: Tenant, operator_key: str, who: str
) -> None:
    key = tenant.key if who == "account" else operator_key
    created = await api.post(
        _path(tenant), key=key,
        json={"url": URL, "events": ["message.queued", "message.failed"], "description": "crm"},
    )
    assert created.status == 201, created.json
    body = created.json
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > len("whsec_") + 40
    assert created.headers["location"] == _path(tenant, f"/{body['id']}")
    assert body["account_id"] == tenant.id and body["url"] == URL
    assert body["events"] == ["message.queued", "message.failed"]
    assert body["enabled"] is True and body["description"] == "crm"

    one = _path(tenant, f"/{body['id']}")
    got = await api.get(one, key=key)
    listed = await api.get(_path(tenant), key=key)
    patched = await api.patch(one, key=key, json={"description": "crm v2"})
    again = await api.get(one, key=tenant.key)
    for reply in (got, listed, patched, again):
        assert reply.status == 200, reply.json
    for endpoint in (got.json, patched.json, again.json, *listed.json["items"]):
        assert "secret" not in endpoint
    assert {k: v for k, v in body.items() if k != "secret"} == got.json
    # Not under any other name either: the string is in no answer after the create.
    later = api.replies[api.replies.index(created) + 1:]
    assert later and all(secret not in r.body.decode() for r in later)


async def test_rotate_secret_answers_a_new_secret_once(api: Api, tenant: Tenant) -> None:
    created = await _create(api, tenant)
    rotated = await api.post(_path(tenant, f"/{created['id']}/rotate-secret"), key=tenant.key)
    assert rotated.status == 200
    new = rotated.json["secret"]
    assert new.startswith("whsec_") and new != created["secret"]
    assert {k: v for k, v in rotated.json.items() if k not in ("secret", "updated_at")} == {
        k: v for k, v in created.items() if k not in ("secret", "updated_at")
    }
    got = await api.get(_path(tenant, f"/{created['id']}"), key=tenant.key)
    assert "secret" not in got.json
    assert new not in got.body.decode() and created["secret"] not in got.body.decode()


# ---------------------------------------------------------------- validation


async def test_http_url_is_422_naming_url_and_the_setting(api: Api, tenant: Tenant) -> None:
    reply = await api.post(_path(tenant), key=tenant.key,
                           json={"url": "http://hooks.example.com/", "events": ["message.sent"]})
    assert reply.status == 422
    assert reply.json["field"] == "url" and "webhooks.allow_http" in reply.json["detail"]
    assert (await api.get(_path(tenant), key=tenant.key)).json["items"] == []


@pytest.mark.parametrize("url", PRIVATE_URLS)
async def test_private_address_is_422_naming_the_setting(api: Api, tenant: Tenant, url: str) -> None:
    reply = await api.post(_path(tenant), key=tenant.key, json={"url": url, "events": ["message.sent"]})
    assert reply.status == 422
    assert reply.json["field"] == "url"
    assert "webhooks.allow_private_networks" in reply.json["detail"]
    assert (await api.get(_path(tenant), key=tenant.key)).json["items"] == []


async def test_patch_to_a_refused_url_is_422_and_keeps_the_old(api: Api, tenant: Tenant) -> None:
    created = await _create(api, tenant)
    one = _path(tenant, f"/{created['id']}")
    for url in ["http://hooks.example.com/", "https://10.0.0.1/"]:
        reply = await api.patch(one, key=tenant.key, json={"url": url})
        assert reply.status == 422 and reply.json["field"] == "url"
    assert (await api.get(one, key=tenant.key)).json["url"] == URL


@pytest.mark.parametrize("config", [PERMISSIVE], ids=["permissive"])
@pytest.mark.parametrize("url", ["http://hooks.example.com/", "http://127.0.0.1:8080/x", *PRIVATE_URLS])
async def test_settings_allow_http_and_private_addresses(
    api: Api, tenant: Tenant, config: Config, url: str
) -> None:
    assert api.runtime.config.webhooks.allow_http and api.runtime.config.webhooks.allow_private_networks
    created = await _create(api, tenant, url=url)
    assert created["url"] == url


@pytest.mark.parametrize(("body", "field", "says"), [
    ({"url": "https://user:pw@hooks.example.com/"}, "url", "user name or password"),
    ({"url": "https://token@hooks.example.com/"}, "url", "user name or password"),
    ({"url": "ftp://hooks.example.com/"}, "url", "https://"),
    ({"url": "https:///nohost"}, "url", "no host"),
    ({"url": ""}, "url", "https:// URL"),
    # Regression: a NUL reached PostgreSQL (500); CR, LF, spaces were stored as sent.
    ({"url": "https://hooks.example.com/\x00"}, "url", "control characters"),
    ({"url": "https://hooks.example.com/a\nb"}, "url", "control characters"),
    ({"url": "https://hooks.example.com\r\n/"}, "url", "control characters"),
    ({"url": "https://hooks example.com/"}, "url", "spaces"),
    ({"url": "https://hooks.example.com/\x7f"}, "url", "control characters"),
    ({"events": ["message.bounced"]}, "events[0]", "must be one of"),
    ({"events": []}, "events", "at least one"),
    ({"events": ["webhook.test"]}, "events[0]", "must be one of"),
    ({"events": ["message.sent", "message.sent"]}, "events[1]", "listed twice"),
    ({"secret": "whsec_mine"}, "secret", "unknown field"),
    ({"account_id": str(uuid.uuid4())}, "account_id", "unknown field"),
    ({"enabled": 1}, "enabled", "true or false"),
])
async def test_invalid_bodies_are_422_naming_the_member(
    api: Api, tenant: Tenant, body: dict[str, Any], field: str, says: str
) -> None:
    reply = await api.post(
        _path(tenant), key=tenant.key, json={"url": URL, "events": ["message.sent"], **body}
    )
    assert reply.status == 422, reply.json
    assert reply.json["field"] == field and says in reply.json["detail"], reply.json
    assert (await api.get(_path(tenant), key=tenant.key)).json["items"] == []


async def test_url_and_events_are_required(api: Api, tenant: Tenant) -> None:
    for body, field in [({"events": ["message.sent"]}, "url"), ({"url": URL}, "events")]:
        reply = await api.post(_path(tenant), key=tenant.key, json=body)
        assert reply.status == 422 and reply.json["field"] == field


async def test_patch_refuses_empty_events_unknown_members_and_empty_bodies(
    api: Api, tenant: Tenant
) -> None:
    created = await _create(api, tenant)
    one = _path(tenant, f"/{created['id']}")
    for body, field in [
        ({"events": []}, "events"),
        ({"events": ["webhook.test"]}, "events[0]"),
        ({"url": "https://hooks.example.com/\x00"}, "url"),
        ({"secret": "whsec_mine"}, "secret"),
        ({}, "body"),
    ]:
        reply = await api.patch(one, key=tenant.key, json=body)
        assert reply.status == 422 and reply.json["field"] == field, (body, reply.json)
    got = (await api.get(one, key=tenant.key)).json
    assert got == {k: v for k, v in created.items() if k != "secret"}


# ---------------------------------------------------------------- the cap


async def test_the_21st_endpoint_is_409(api: Api, tenant: Tenant, other: Tenant) -> None:
    assert webhooks.MAX_PER_ACCOUNT == 20
    for i in range(20):
        await _create(api, tenant, url=f"{URL}/{i}")
    reply = await api.post(_path(tenant), key=tenant.key, json={"url": URL, "events": ["message.sent"]})
    assert reply.status == 409
    assert "20 webhook endpoints, the most allowed" in reply.json["detail"]
    assert len((await api.get(_path(tenant), key=tenant.key)).json["items"]) == 20
    # The cap is per account.
    await _create(api, other)
    # A freed slot can be used again.
    first = (await api.get(_path(tenant), key=tenant.key)).json["items"][0]
    assert (await api.delete(_path(tenant, f"/{first['id']}"), key=tenant.key)).status == 204
    await _create(api, tenant)


# ---------------------------------------------------------------- tenancy


async def test_another_tenants_endpoints_are_404(
    api: Api, tenant: Tenant, other: Tenant, storage: Storage
) -> None:
    theirs = await _create(api, other, events=["message.queued"])
    await api.post(_path(other, f"/{theirs['id']}/test"), key=other.key)
    deliveries_before = await _count(storage, "webhook_deliveries")
    their_id = theirs["id"]
    foreign = [
        ("GET", _path(other)),
        ("POST", _path(other)),
        ("GET", _path(other, f"/{their_id}")),
        ("PATCH", _path(other, f"/{their_id}")),
        ("DELETE", _path(other, f"/{their_id}")),
        ("POST", _path(other, f"/{their_id}/rotate-secret")),
        ("POST", _path(other, f"/{their_id}/test")),
        ("GET", _path(other, f"/{their_id}/deliveries")),
        # Their endpoint under my account's path is no better.
        ("GET", _path(tenant, f"/{their_id}")),
        ("PATCH", _path(tenant, f"/{their_id}")),
        ("DELETE", _path(tenant, f"/{their_id}")),
        ("POST", _path(tenant, f"/{their_id}/rotate-secret")),
        ("POST", _path(tenant, f"/{their_id}/test")),
        ("GET", _path(tenant, f"/{their_id}/deliveries")),
    ]
    for method, path in foreign:
        kwargs: dict[str, Any] = {}
        if method == "POST" and path == _path(other):
            kwargs = {"json": {"url": URL, "events": ["message.sent"]}}
        elif method == "PATCH":
            kwargs = {"json": {"url": "https://attacker.example/", "enabled": False}}
        reply = await api.request(method, path, key=tenant.key, **kwargs)
        assert reply.status == 404, (method, path, reply.status)
        text = reply.body.decode()
        assert their_id not in text and theirs["secret"] not in text

    unchanged = await api.get(_path(other, f"/{their_id}"), key=other.key)
    assert unchanged.json == {k: v for k, v in theirs.items() if k != "secret"}
    assert [e["id"] for e in (await api.get(_path(other), key=other.key)).json["items"]] == [their_id]
    assert await _count(storage, "webhook_deliveries") == deliveries_before
    # Their signing secret is still the one they were given (the rotation was refused).
    async def secret(conn: Any) -> str:
        return await conn.fetchval(  # type: ignore[no-any-return]
            "SELECT secret FROM webhook_endpoints WHERE id = $1", uuid.UUID(their_id)
        )

    assert await storage._bridge.run(secret) == theirs["secret"]
    assert (await api.get(_path(tenant), key=tenant.key)).json["items"] == []


async def test_operator_manages_any_account_and_unknown_accounts_are_404(
    api: Api, tenant: Tenant, operator_key: str
) -> None:
    created = await _create(api, tenant, key=operator_key)
    assert created["account_id"] == tenant.id
    mine = (await api.get(_path(tenant), key=tenant.key)).json["items"]
    assert [e["id"] for e in mine] == [created["id"]]
    assert (await api.get(_path(tenant), key=operator_key)).status == 200
    nobody = str(uuid.uuid4())
    assert (await api.get(_path(nobody), key=operator_key)).status == 404
    reply = await api.post(_path(nobody), key=operator_key, json={"url": URL, "events": ["message.sent"]})
    assert reply.status == 404
    assert (await api.delete(_path(tenant, f"/{created['id']}"), key=operator_key)).status == 204


# ---------------------------------------------------------------- patch and delete


async def test_patch_changes_what_it_names_and_keeps_the_rest(api: Api, tenant: Tenant) -> None:
    created = await _create(api, tenant, events=["message.sent"], description="first")
    one = _path(tenant, f"/{created['id']}")
    steps: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"url": "https://other.example.com/in"}, {"url": "https://other.example.com/in"}),
        ({"events": ["message.failed", "recipient.suppressed"]},
         {"events": ["message.failed", "recipient.suppressed"]}),
        ({"enabled": False}, {"enabled": False}),
        ({"description": ""}, {"description": ""}),
    ]
    expected = {k: v for k, v in created.items() if k not in ("secret", "updated_at")}
    for change, effect in steps:
        reply = await api.patch(one, key=tenant.key, json=change)
        assert reply.status == 200, reply.json
        expected.update(effect)
        assert {k: v for k, v in reply.json.items() if k != "updated_at"} == expected
        assert (await api.get(one, key=tenant.key)).json == reply.json


async def test_delete_then_get_is_404(api: Api, tenant: Tenant) -> None:
    created = await _create(api, tenant)
    keep = await _create(api, tenant)
    one = _path(tenant, f"/{created['id']}")
    await api.post(f"{one}/test", key=tenant.key)
    reply = await api.delete(one, key=tenant.key)
    assert reply.status == 204 and reply.body == b""
    assert (await api.get(one, key=tenant.key)).status == 404
    assert (await api.get(f"{one}/deliveries", key=tenant.key)).status == 404
    assert (await api.delete(one, key=tenant.key)).status == 404
    assert (await api.patch(one, key=tenant.key, json={"enabled": False})).status == 404
    assert [e["id"] for e in (await api.get(_path(tenant), key=tenant.key)).json["items"]] == [keep["id"]]


# ---------------------------------------------------------------- test events and deliveries


async def test_test_event_is_listed_as_a_pending_delivery(api: Api, tenant: Tenant) -> None:
    created = await _create(api, tenant, events=["message.sent"], enabled=False)
    one = _path(tenant, f"/{created['id']}")
    sent = await api.post(f"{one}/test", key=tenant.key)
    assert sent.status == 202
    event_id, delivery_id = sent.json["event_id"], sent.json["delivery_id"]

    page = await api.get(f"{one}/deliveries", key=tenant.key)
    assert page.status == 200 and page.json["next_cursor"] is None
    [delivery] = page.json["items"]
    assert delivery["id"] == delivery_id and delivery["event_id"] == event_id
    assert delivery["endpoint_id"] == created["id"]
    assert delivery["type"] == "webhook.test" and delivery["status"] == "pending"
    assert delivery["next_attempt_at"] is not None and delivery["attempts"] == []
    assert delivery["last_status"] is None and delivery["last_error"] is None
    body = json.loads(delivery["body"])
    assert body["id"] == event_id and body["type"] == "webhook.test"
    assert body["account_id"] == tenant.id and body["data"]["endpoint_id"] == created["id"]
    assert created["secret"] not in page.body.decode()

    pending = await api.get(f"{one}/deliveries", key=tenant.key, params={"status": "pending"})
    assert [d["id"] for d in pending.json["items"]] == [delivery_id]
    done = await api.get(f"{one}/deliveries", key=tenant.key, params={"status": "delivered"})
    assert done.json == {"items": [], "next_cursor": None}


async def test_deliveries_page_newest_first_with_a_cursor(api: Api, tenant: Tenant) -> None:
    created = await _create(api, tenant)
    one = _path(tenant, f"/{created['id']}")
    sent = [(await api.post(f"{one}/test", key=tenant.key)).json["delivery_id"] for _ in range(3)]

    whole = await api.get(f"{one}/deliveries", key=tenant.key)
    assert [d["id"] for d in whole.json["items"]] == sent[::-1]

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(3):
        params = {"limit": "1"} if cursor is None else {"limit": "1", "cursor": cursor}
        page = (await api.get(f"{one}/deliveries", key=tenant.key, params=params)).json
        assert len(page["items"]) == 1
        seen.append(page["items"][0]["id"])
        cursor = page["next_cursor"]
        if len(seen) < 3:
            assert isinstance(cursor, str)
    assert cursor is None
    assert seen == sent[::-1]

    two = (await api.get(f"{one}/deliveries", key=tenant.key, params={"limit": "2"})).json
    assert [d["id"] for d in two["items"]] == sent[:0:-1]
    rest = (await api.get(f"{one}/deliveries", key=tenant.key,
                          params={"limit": "2", "cursor": two["next_cursor"]})).json
    assert [d["id"] for d in rest["items"]] == [sent[0]] and rest["next_cursor"] is None


@pytest.mark.parametrize(("params", "field"), [
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
    ({"status": "sent"}, "status"),
    ({"status": ""}, "status"),
    ({"limit": "0"}, "limit"),
    ({"limit": str(webhooks.MAX_PAGE + 1)}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"page": "2"}, "page"),
])
async def test_bad_query_parameters_are_400_naming_them(
    api: Api, tenant: Tenant, params: dict[str, str], field: str
) -> None:
    created = await _create(api, tenant)
    reply = await api.get(_path(tenant, f"/{created['id']}/deliveries"), key=tenant.key, params=params)
    assert reply.status == 400, reply.json
    assert reply.json["field"] == field


async def test_limit_at_the_maximum_is_accepted(api: Api, tenant: Tenant) -> None:
    created = await _create(api, tenant)
    reply = await api.get(_path(tenant, f"/{created['id']}/deliveries"), key=tenant.key,
                          params={"limit": str(webhooks.MAX_PAGE)})
    assert reply.status == 200 and reply.json == {"items": [], "next_cursor": None}


# ---------------------------------------------------------------- the outbox


async def test_a_stored_message_queues_one_message_queued_delivery(
    api: Api, tenant: Tenant, storage: Storage
) -> None:
    subscribed = await _create(api, tenant, events=["message.queued", "message.sent"])
    elsewhere = await _create(api, tenant, events=["message.sent"])
    message_id = await storage.messages.enqueue(_message(tenant.id))

    assert await _count(storage, "webhook_events") == 1
    assert await _count(storage, "webhook_deliveries") == 1
    page = (await api.get(_path(tenant, f"/{subscribed['id']}/deliveries"), key=tenant.key)).json
    [delivery] = page["items"]
    assert delivery["type"] == "message.queued" and delivery["status"] == "pending"
    body = json.loads(delivery["body"])
    assert body["id"] == delivery["event_id"] and body["type"] == "message.queued"
    assert body["account_id"] == tenant.id
    assert body["data"]["message_id"] == str(message_id)
    assert body["data"]["envelope"] == {"mail_from": "sender@example.com", "rcpt_to": ["a@example.net"]}
    assert body["correlation_id"] == "c-1" and body["data"]["message_id_header"] == "<m@example.com>"
    unsubscribed = await api.get(_path(tenant, f"/{elsewhere['id']}/deliveries"), key=tenant.key)
    assert unsubscribed.json["items"] == []


async def test_two_subscribed_endpoints_share_one_event(
    api: Api, tenant: Tenant, storage: Storage
) -> None:
    first = await _create(api, tenant, events=["message.queued"])
    second = await _create(api, tenant, url=f"{URL}/2", events=["message.queued"])
    await storage.messages.enqueue(_message(tenant.id))
    assert await _count(storage, "webhook_events") == 1
    assert await _count(storage, "webhook_deliveries") == 2
    ids = []
    for endpoint in (first, second):
        [d] = (await api.get(_path(tenant, f"/{endpoint['id']}/deliveries"), key=tenant.key)).json["items"]
        ids.append(d["event_id"])
    assert ids[0] == ids[1]


async def test_no_outbox_row_without_an_enabled_subscribed_endpoint(
    api: Api, tenant: Tenant, storage: Storage
) -> None:
    without = tenant
    disabled = await make_tenant(storage)
    unsubscribed = await make_tenant(storage)
    await _create(api, disabled, events=["message.queued"], enabled=False)
    await _create(api, unsubscribed, events=["message.sent", "message.failed", "recipient.suppressed"])
    # Another account's subscription does not make these accounts' events wanted.
    subscriber = await make_tenant(storage)
    await _create(api, subscriber, events=["message.queued"])

    for account in (without, disabled, unsubscribed):
        await storage.messages.enqueue(_message(account.id))
    await storage.messages.enqueue_many([_message(a.id) for a in (without, disabled, unsubscribed)])
    assert await _count(storage, "webhook_events") == 0
    assert await _count(storage, "webhook_deliveries") == 0
    assert await _count(storage, "messages") == 6

    # Enabling the disabled endpoint makes the next message's event wanted.
    [endpoint] = (await api.get(_path(disabled), key=disabled.key)).json["items"]
    await api.patch(_path(disabled, f"/{endpoint['id']}"), key=disabled.key, json={"enabled": True})
    await storage.messages.enqueue(_message(disabled.id))
    assert await _count(storage, "webhook_events") == 1
    [delivery] = (await api.get(_path(disabled, f"/{endpoint['id']}/deliveries"),
                                key=disabled.key)).json["items"]
    assert delivery["type"] == "message.queued"


async def test_a_batch_of_several_accounts_records_events_only_for_the_subscribed_one(
    api: Api, tenant: Tenant, storage: Storage
) -> None:
    """Group commit writes several accounts' messages in one transaction; only the
    subscribed account's messages get an event (the others' are never built)."""
    subscriber = await make_tenant(storage)
    endpoint = await _create(api, subscriber, events=["message.queued"])
    ids = await storage.messages.enqueue_many(
        [_message(tenant.id), _message(subscriber.id), _message(tenant.id), _message(subscriber.id)]
    )
    assert await _count(storage, "webhook_events") == 2
    page = (await api.get(_path(subscriber, f"/{endpoint['id']}/deliveries"), key=subscriber.key)).json
    queued = sorted(json.loads(d["body"])["data"]["message_id"] for d in page["items"])
    assert queued == sorted(str(i) for i in (ids[1], ids[3]))

