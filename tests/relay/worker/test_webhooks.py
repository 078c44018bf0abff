"""Webhook delivery against real HTTP receivers on 127.0.0.1.

Events are put in the outbox the way relay does it (a message stored, a verdict
written); a ``WebhookSender`` delivers them to a small h11 server that records each
request, and the tests check what the receiver got (signature included) and what
the database recorded. Waiting is polling the receiver or the database under a
deadline; timeouts are real but short.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import uuid
from typing import Any

import attrs
import pytest
import trio
import trustme

from relay import metrics, models, webhooks
from relay.config import WebhooksConfig
from relay.models import EventKind, WebhookDeliveryStatus
from relay.storage import Storage
from relay.worker.webhooks import WebhookSender

from ..storage.helpers import make_account, new_message
from . import httpserver
from .conftest import wait_until
from .upstream import server_context

#: Development settings: the receivers listen on loopback over plain http.
LOCAL = WebhooksConfig(
    allow_http=True, allow_private_networks=True, poll_interval=0.02, timeout=2.0,
    backoff_base=60, backoff_max=600,
)


async def endpoint(
    storage: Storage, account: models.Account, url: str,
    kinds: tuple[EventKind, ...] = (EventKind.MESSAGE_QUEUED,), **fields: Any,
) -> models.WebhookEndpoint:
    made = await storage.webhooks.create(
        account_id=account.id, url=url, events=kinds, secret=webhooks.new_secret(), limit=20,
        **fields,
    )
    assert made is not None
    return made


async def deliveries(storage: Storage, hook: models.WebhookEndpoint) -> list[models.WebhookDelivery]:
    return await storage.webhooks.deliveries(hook.id, account_id=hook.account_id, limit=200)


async def settled(storage: Storage, hook: models.WebhookEndpoint, n: int = 1) -> list[models.WebhookDelivery]:
    """Wait until ``n`` deliveries of ``hook`` have an attempt recorded."""

    async def check() -> list[models.WebhookDelivery] | None:
        found = await deliveries(storage, hook)
        return found if len(found) >= n and all(d.attempts for d in found) else None

    return await wait_until(check)  # type: ignore[no-any-return]


async def start(nursery: trio.Nursery, storage: Storage, config: WebhooksConfig = LOCAL,
                **kwargs: Any) -> WebhookSender:
    sender = WebhookSender(storage, config, **kwargs)
    await nursery.start(sender.run)
    return sender


def body_of(request: httpserver.Request) -> dict[str, Any]:
    return json.loads(request.body)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- delivery


async def test_a_queued_message_is_posted_signed_once_and_recorded(storage: Storage, nursery: trio.Nursery) -> None:
    receiver = await httpserver.start(nursery)
    account = await make_account(storage)
    hook = await endpoint(storage, account, receiver.url + "/hooks?x=1")
    message = new_message(account)
    await storage.messages.enqueue(attrs.evolve(message, correlation_id="sess-1"))
    await start(nursery, storage)

    [delivery] = await settled(storage, hook)
    assert delivery.status is WebhookDeliveryStatus.DELIVERED
    [request] = receiver.requests
    assert (request.method, request.target) == ("POST", "/hooks?x=1")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert webhooks.verify(
        hook.secret, timestamp=request.headers["relay-webhook-timestamp"],
        signature=request.headers["relay-webhook-signature"], body=request.body,
    )
    assert not webhooks.verify(
        webhooks.new_secret(), timestamp=request.headers["relay-webhook-timestamp"],
        signature=request.headers["relay-webhook-signature"], body=request.body,
    )
    event = body_of(request)
    assert request.headers["relay-webhook-id"] == event["id"] == str(delivery.event_id)
    assert event["type"] == "message.queued"
    assert event["account_id"] == str(account.id)
    assert event["correlation_id"] == "sess-1"
    assert event["data"]["message_id"] == str(message.id)
    assert event["data"]["envelope"] == {"mail_from": message.mail_from, "rcpt_to": list(message.rcpt_to)}
    assert request.body.decode() == delivery.body  # the stored octets are the signed ones
    [attempt] = delivery.attempts
    assert (attempt.attempt, attempt.status_code, attempt.error) == (1, 200, None)
    assert (metrics.scrape_registry().get_sample_value("webhook_attempts_total", {"result": "delivered"}) or 0) >= 1


async def test_a_5xx_is_retried_with_backoff_then_delivered_with_the_same_id(
    storage: Storage, nursery: trio.Nursery, database_url: str
) -> None:
    receiver = await httpserver.start(nursery, answers=[
        httpserver.Answer(500, {"error": "down"}), httpserver.Answer(200),
    ])
    account = await make_account(storage)
    hook = await endpoint(storage, account, receiver.url)
    await storage.messages.enqueue(new_message(account))
    before = dt.datetime.now(dt.UTC)
    await start(nursery, storage)

    [delivery] = await settled(storage, hook)
    assert delivery.status is WebhookDeliveryStatus.PENDING
    assert delivery.last_status == 500 and "down" in (delivery.last_error or "")
    # backoff_base 60 s with ±20 % jitter
    assert before + dt.timedelta(seconds=47) < delivery.next_attempt_at < before + dt.timedelta(seconds=80)
    assert len(receiver.requests) == 1

    await _make_due(database_url, delivery.id)
    await wait_until(lambda: _status(storage, hook, WebhookDeliveryStatus.DELIVERED))
    first, second = receiver.requests
    assert first.headers["relay-webhook-id"] == second.headers["relay-webhook-id"]
    assert first.body == second.body
    [delivery] = await deliveries(storage, hook)
    assert [(a.attempt, a.status_code) for a in delivery.attempts] == [(1, 500), (2, 200)]


async def test_a_receiver_that_never_answers_times_out_and_is_retried(
    storage: Storage, nursery: trio.Nursery
) -> None:
    receiver = await httpserver.start(nursery, answers=[httpserver.Answer(hang=True)])
    account = await make_account(storage)
    hook = await endpoint(storage, account, receiver.url)
    await storage.messages.enqueue(new_message(account))
    await start(nursery, storage, attrs.evolve(LOCAL, timeout=0.5))

    [delivery] = await settled(storage, hook)
    assert delivery.status is WebhookDeliveryStatus.PENDING
    [attempt] = delivery.attempts
    assert attempt.status_code is None
    assert attempt.error == "no answer within 0.5s (webhooks.timeout)"


async def test_410_gone_gives_up_at_once_and_an_old_event_gives_up_after_max_age(
    storage: Storage, nursery: trio.Nursery
) -> None:
    gone = await httpserver.start(nursery, answers=[httpserver.Answer(410)])
    failing = await httpserver.start(nursery, answers=[httpserver.Answer(503)])
    account = await make_account(storage)
    hook_gone = await endpoint(storage, account, gone.url)
    hook_failing = await endpoint(storage, account, failing.url)
    await storage.messages.enqueue(new_message(account))
    # max_age shorter than the first backoff: the first failure is the last.
    await start(nursery, storage, attrs.evolve(LOCAL, max_age=30))

    [delivery] = await settled(storage, hook_gone)
    assert delivery.status is WebhookDeliveryStatus.FAILED and delivery.last_status == 410
    [delivery] = await settled(storage, hook_failing)
    assert delivery.status is WebhookDeliveryStatus.FAILED and delivery.last_status == 503


async def test_only_the_first_octets_of_an_answer_are_read(storage: Storage, nursery: trio.Nursery) -> None:
    receiver = await httpserver.start(nursery, answers=[httpserver.Answer(500, b"x" * 100_000)])
    account = await make_account(storage)
    hook = await endpoint(storage, account, receiver.url)
    await storage.messages.enqueue(new_message(account))
    await start(nursery, storage, attrs.evolve(LOCAL, max_response_bytes=64))

    [delivery] = await settled(storage, hook)
    assert delivery.last_error == "HTTP 500: " + "x" * 64


async def test_https_endpoint_is_verified_for_its_name(storage: Storage, nursery: trio.Nursery) -> None:
    ca = trustme.CA()
    receiver = await httpserver.start(nursery, ssl_context=server_context(ca))
    untrusted = await httpserver.start(nursery, ssl_context=server_context(trustme.CA()))
    account = await make_account(storage)
    hook = await endpoint(storage, account, receiver.url + "/in")
    bad = await endpoint(storage, account, untrusted.url + "/in")
    await storage.messages.enqueue(new_message(account))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    await start(nursery, storage, attrs.evolve(LOCAL, allow_http=False), verify=client_context)

    [delivery] = await settled(storage, hook)
    assert delivery.status is WebhookDeliveryStatus.DELIVERED
    assert receiver.requests[0].headers["host"] == f"localhost:{receiver.port}"
    [refused] = await settled(storage, bad)
    assert refused.status is WebhookDeliveryStatus.PENDING
    assert "CERTIFICATE_VERIFY_FAILED" in (refused.last_error or "") or "certificate" in (refused.last_error or "").lower()
    assert untrusted.requests == []


# ---------------------------------------------------------------- safety


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_addresses_are_refused_unless_allowed(
    storage: Storage, nursery: trio.Nursery, host: str
) -> None:
    receiver = await httpserver.start(nursery)
    account = await make_account(storage)
    # Stored directly: the API would refuse a literal private address already.
    hook = await endpoint(storage, account, f"http://{host}:{receiver.port}/")
    await storage.messages.enqueue(new_message(account))
    await start(nursery, storage, attrs.evolve(LOCAL, allow_private_networks=False))

    [delivery] = await settled(storage, hook)
    assert delivery.status is WebhookDeliveryStatus.PENDING
    assert "is not a public address" in (delivery.last_error or "")
    assert "webhooks.allow_private_networks" in (delivery.last_error or "")
    assert receiver.requests == []


async def test_http_is_refused_unless_allowed(storage: Storage, nursery: trio.Nursery) -> None:
    receiver = await httpserver.start(nursery)
    account = await make_account(storage)
    hook = await endpoint(storage, account, receiver.url)
    await storage.messages.enqueue(new_message(account))
    await start(nursery, storage, attrs.evolve(LOCAL, allow_http=False))

    [delivery] = await settled(storage, hook)
    assert "webhooks.allow_http" in (delivery.last_error or "")
    assert receiver.requests == []


def test_url_policy_refuses_what_it_should() -> None:
    strict = webhooks.UrlPolicy()
    assert strict.check_url("https://hooks.example.com/x?y=1") == "https://hooks.example.com/x?y=1"
    for url, words in [
        ("http://hooks.example.com/", "webhooks.allow_http"),
        ("ftp://hooks.example.com/", "https://"),
        ("https://user:pw@hooks.example.com/", "user name or password"),
        ("https://10.1.2.3/", "not a public address"),
        ("https://10.0.0.1./", "not a public address"),
        ("https://127.1/", "not a public address"),
        ("https://2130706433/", "not a public address"),
        ("https://0x7f.0.0.1/", "not a public address"),
        ("https://169.254.169.254/latest/meta-data", "not a public address"),
        ("https://[::1]/", "not a public address"),
        ("https://[::ffff:127.0.0.1]/", "not a public address"),
        ("https://[fd00::1]/", "not a public address"),
        ("https://224.0.0.1/", "not a public address"),
        ("https:///path", "no host"),
    ]:
        with pytest.raises(webhooks.InvalidUrl, match=words):
            strict.check_url(url)
    relaxed = webhooks.UrlPolicy(allow_http=True, allow_private_networks=True)
    assert relaxed.check_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000/"


def test_signature_covers_timestamp_and_body_and_expires() -> None:
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_") and secret != webhooks.new_secret()
    body = b'{"id":"1"}'
    signature = webhooks.sign(secret, 1_000_000, body)
    assert webhooks.verify(secret, timestamp="1000000", signature=signature, body=body, now=1_000_100)
    assert not webhooks.verify(secret, timestamp="1000001", signature=signature, body=body, now=1_000_100)
    assert not webhooks.verify(secret, timestamp="1000000", signature=signature, body=body + b" ", now=1_000_100)
    assert not webhooks.verify(secret, timestamp="1000000", signature=signature, body=body, now=1_000_301)
    assert not webhooks.verify(secret, timestamp="soon", signature=signature, body=body, now=1_000_000)
    # A receiver holding two secrets across a rotation accepts either's signature.
    assert webhooks.verify(secret, timestamp="1000000", signature="v1=00," + signature, body=body, now=1_000_000)


# ---------------------------------------------------------------- isolation


async def test_a_slow_endpoint_holds_only_its_own_slots(storage: Storage, nursery: trio.Nursery) -> None:
    release = trio.Event()
    slow = await httpserver.start(nursery, answers=[httpserver.Answer(release=release)])
    fast = await httpserver.start(nursery)
    account = await make_account(storage)
    slow_hook = await endpoint(storage, account, slow.url)
    fast_hook = await endpoint(storage, account, fast.url)
    await storage.messages.enqueue_many([new_message(account) for _ in range(6)])
    sender = await start(nursery, storage, attrs.evolve(LOCAL, concurrency=4, per_endpoint_concurrency=2))

    # Every event reaches the fast endpoint while the slow one holds two requests.
    await settled(storage, fast_hook, 6)
    assert len(slow.requests) == 2
    assert sender.statistics().in_flight == 2
    release.set()
    found = await settled(storage, slow_hook, 6)
    assert {d.status for d in found} == {WebhookDeliveryStatus.DELIVERED}


async def test_a_disabled_endpoint_gets_nothing_and_no_event_is_stored_for_it(
    storage: Storage, nursery: trio.Nursery, database_url: str
) -> None:
    receiver = await httpserver.start(nursery)
    account = await make_account(storage)
    await endpoint(storage, account, receiver.url, enabled=False)
    await endpoint(storage, account, receiver.url, kinds=(EventKind.MESSAGE_FAILED,))
    await storage.messages.enqueue(new_message(account))
    assert await _count(database_url, "webhook_events", account.id) == 0


async def _make_due(database_url: str, delivery_id: uuid.UUID) -> None:
    from .test_leases import sql

    await sql(database_url, "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = %s",
              str(delivery_id))


async def _count(database_url: str, table: str, account_id: uuid.UUID) -> int:
    from .test_leases import sql

    [(n,)] = await sql(database_url, f"SELECT count(*) FROM {table} WHERE account_id = %s", str(account_id))
    return int(n)


async def _status(storage: Storage, hook: models.WebhookEndpoint, status: WebhookDeliveryStatus) -> bool:
    found = await deliveries(storage, hook)
    return bool(found) and all(d.status is status for d in found)
