"""/api/v1/messages: filters, cursor pages, attempts, retry and delete by state."""

from __future__ import annotations

import datetime as dt
import uuid

from relay import models
from relay.models import DeliveryOutcome, MessageStatus
from relay.storage import AttemptLog, Finish, Storage

from .conftest import Api, Tenant


def new_message(tenant: Tenant, n: int = 0) -> models.NewMessage:
    return models.NewMessage(
        account_id=tenant.account.id, mail_from="sender@example.com",
        rcpt_to=("a@example.net",), raw=b"Subject: %d\r\n\r\nsecret body\r\n" % n,
        message_id=f"<{n}@example.com>", client_ip="127.0.0.1", tls=True, correlation_id=f"c-{n}",
    )


async def enqueue(storage: Storage, tenant: Tenant, count: int = 1) -> list[uuid.UUID]:
    return [await storage.messages.enqueue(new_message(tenant, n)) for n in range(count)]


async def finish_as(storage: Storage, status: MessageStatus) -> uuid.UUID:
    """Claim the one due message and finish it with ``status``; returns its id."""
    (claimed,) = await storage.messages.claim(worker_id="w", limit=1, lock_seconds=60)
    if status is MessageStatus.SENDING:
        return claimed.id
    outcome = {MessageStatus.SENT: DeliveryOutcome.DELIVERED, MessageStatus.FAILED: DeliveryOutcome.FAILED,
               MessageStatus.DEFERRED: DeliveryOutcome.DEFERRED}[status]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1) if status is MessageStatus.DEFERRED else None
    await storage.messages.finish("w", [Finish(
        claimed.id, status, logs=(AttemptLog(outcome, "250 2.0.0 ok" if outcome is DeliveryOutcome.DELIVERED else "550 no", 12),),
        error=None if status is MessageStatus.SENT else "550 no", next_attempt_at=later,
    )])
    return claimed.id


async def test_get_has_attempts_and_no_body(api: Api, tenant: Tenant, storage: Storage) -> None:
    await enqueue(storage, tenant)
    message_id = await finish_as(storage, MessageStatus.SENT)
    reply = await api.get(f"/api/v1/messages/{message_id}", key=tenant.key)
    assert reply.status == 200, reply.body
    body = reply.json
    assert body["status"] == "sent" and body["attempts"] == 1
    assert [a["outcome"] for a in body["delivery_attempts"]] == ["delivered"]
    assert body["delivery_attempts"][0]["response"] == "250 2.0.0 ok"
    assert b"secret body" not in reply.body


async def test_list_filters_and_pages(api: Api, tenant: Tenant, other: Tenant, storage: Storage) -> None:
    ids = await enqueue(storage, tenant, 5)
    await enqueue(storage, other, 2)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        reply = await api.get("/api/v1/messages", key=tenant.key, params=params)
        assert reply.status == 200, reply.body
        seen += [m["id"] for m in reply.json["items"]]
        cursor = reply.json["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i) for i in reversed(ids)]  # newest first, no overlap, nothing missed

    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert (await api.get("/api/v1/messages", key=tenant.key, params={"since": future})).json["items"] == []
    assert len((await api.get("/api/v1/messages", key=tenant.key, params={"until": future})).json["items"]) == 5


async def test_list_refuses_bad_parameters(api: Api, tenant: Tenant) -> None:
    for params, field in (({"status": "lost"}, "status"), ({"since": "yesterday"}, "since"),
                          ({"until": "2024-01-01T00:00:00"}, "until"), ({"limit": "201"}, "limit"),
                          ({"limit": "-1"}, "limit"), ({"cursor": "!!!"}, "cursor"),
                          ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"), ({"state": "sent"}, "state")):
        reply = await api.get("/api/v1/messages", key=tenant.key, params=params)
        assert reply.status == 400, params
        assert reply.json["field"] == field


async def test_operator_sees_all_and_filters_by_account(api: Api, operator_key: str, tenant: Tenant,
                                                        other: Tenant, storage: Storage) -> None:
    await enqueue(storage, tenant, 2)
    await enqueue(storage, other, 1)
    assert len((await api.get("/api/v1/messages", key=operator_key)).json["items"]) == 3
    only = await api.get("/api/v1/messages", key=operator_key, params={"account_id": other.id})
    assert len(only.json["items"]) == 1
    # An account key naming another account sees nothing of it.
    foreign = await api.get("/api/v1/messages", key=tenant.key, params={"account_id": other.id})
    assert foreign.json["items"] == []


async def test_retry_and_delete_by_state(api: Api, tenant: Tenant, storage: Storage) -> None:
    await enqueue(storage, tenant)
    failed = await finish_as(storage, MessageStatus.FAILED)
    reply = await api.post(f"/api/v1/messages/{failed}/retry", key=tenant.key)
    assert reply.status == 200, reply.body
    assert reply.json["status"] == "queued"

    sending = await finish_as(storage, MessageStatus.SENDING)
    assert sending == failed
    await enqueue(storage, tenant)
    sent = await finish_as(storage, MessageStatus.SENT)
    for message_id in (sending, sent):
        for method, suffix in (("post", "/retry"), ("delete", "")):
            reply = await getattr(api, method)(f"/api/v1/messages/{message_id}{suffix}", key=tenant.key)
            assert reply.status == 409, (method, message_id)
            assert "queued, deferred or failed" in reply.json["detail"]

    (queued,) = await enqueue(storage, tenant)
    assert (await api.delete(f"/api/v1/messages/{queued}", key=tenant.key)).status == 204
    assert (await api.get(f"/api/v1/messages/{queued}", key=tenant.key)).status == 404
    assert (await api.delete(f"/api/v1/messages/{queued}", key=tenant.key)).status == 404
    assert (await api.post(f"/api/v1/messages/{queued}/retry", key=tenant.key)).status == 404


async def test_status_filter(api: Api, tenant: Tenant, storage: Storage) -> None:
    await enqueue(storage, tenant)
    failed = await finish_as(storage, MessageStatus.FAILED)
    (queued,) = await enqueue(storage, tenant)
    reply = await api.get("/api/v1/messages", key=tenant.key, params={"status": "failed"})
    assert [m["id"] for m in reply.json["items"]] == [str(failed)]
    reply = await api.get("/api/v1/messages", key=tenant.key, params={"status": "queued"})
    assert [m["id"] for m in reply.json["items"]] == [str(queued)]


async def test_retry_makes_a_deferred_message_due_now(api: Api, tenant: Tenant, storage: Storage) -> None:
    await enqueue(storage, tenant)
    deferred = await finish_as(storage, MessageStatus.DEFERRED)
    before = await storage.messages.get(deferred)
    assert before is not None and before.next_attempt_at > dt.datetime.now(dt.UTC)
    reply = await api.post(f"/api/v1/messages/{deferred}/retry", key=tenant.key)
    assert reply.status == 200
    assert dt.datetime.fromisoformat(reply.json["next_attempt_at"]) <= dt.datetime.now(dt.UTC)
