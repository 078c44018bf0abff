"""Webhooks as an application developer meets them, and across a worker's death.

1. ``relay serve`` (smtp, api, worker in one process): an endpoint is created through
   the API, a message is submitted with smtplib (STARTTLS + AUTH), delivered to an
   aiosmtpd upstream, and the receiver gets ``message.queued`` then ``message.sent``,
   each signed with the secret the API showed once.
2. ``kill -9`` of a real ``relay worker`` while the receiver holds its webhook
   request: the verdict committed with its event, so the event is still in the
   outbox and another sender delivers it when the dead one's lease ends — nothing
   lost, and the same event id (the receiver's idempotency key).
"""

from __future__ import annotations

import functools
import json
import smtplib
import ssl
import subprocess
import sys
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from relay import composition, hashed_secrets, webhooks
from relay.config import Config
from relay.models import EventKind, MessageStatus, ProviderType, WebhookDeliveryStatus
from relay.storage import Storage

from ..smtp import conftest as smtp_fixtures
from ..smtp.conftest import PASSWORD, create_account, in_thread
from ..storage.helpers import make_account
from . import httpserver
from .test_kill import START_TIMEOUT, poll, worker_env
from .test_webhooks import LOCAL, deliveries, endpoint, start
from .test_worker import message
from .upstream import aiosmtpd_upstream

ca = smtp_fixtures.ca
tls_files = smtp_fixtures.tls_files
client_context = smtp_fixtures.client_context
relay_config = smtp_fixtures.relay_config


@pytest.fixture
def smtp_env() -> dict[str, str]:
    return {
        "RELAY_API__LISTEN": "127.0.0.1:0",
        "RELAY_WORKER__POLL_INTERVAL": "0.05",
        "RELAY_WORKER__CONNECT_TIMEOUT": "5",
        "RELAY_WORKER__SEND_TIMEOUT": "5",
        "RELAY_WEBHOOKS__POLL_INTERVAL": "0.05",
        # The receiver is on loopback over plain http: development settings.
        "RELAY_WEBHOOKS__ALLOW_HTTP": "true",
        "RELAY_WEBHOOKS__ALLOW_PRIVATE_NETWORKS": "true",
    }


async def test_mail_submitted_over_smtp_produces_signed_queued_and_sent_events(
    relay_config: Config, client_context: ssl.SSLContext, nursery: trio.Nursery
) -> None:
    receiver = await httpserver.start(nursery)
    async with aiosmtpd_upstream(None, tls="none", auth=False) as up, trio.open_nursery() as inner:
        started: composition.Started = await inner.start(functools.partial(
            composition.serve, relay_config, services=("smtp", "api", "worker"), handle_signals=False,
        ))
        storage = started.runtime.storage
        account = await create_account(storage)
        provider = await storage.providers.create(
            account_id=account.id, name="upstream", type=ProviderType.SMTP,
            config={"host": "127.0.0.1", "port": up.port, "tls": "none"},
        )
        await storage.accounts.update(account.id, default_provider_id=provider.id)
        operator = await _operator_key(storage)
        async with httpx.AsyncClient(base_url=started.api.url, headers={"Authorization": f"Bearer {operator}"}) as api:
            created = await api.post(f"/api/v1/accounts/{account.id}/webhooks", json={
                "url": receiver.url + "/relay-events",
                "events": ["message.queued", "message.sent", "message.failed"],
            })
            assert created.status_code == 201, created.text
            secret = created.json()["secret"]

            def submit() -> None:
                with smtplib.SMTP("127.0.0.1", started.smtp.ports[0], local_hostname="client.test",
                                  timeout=10) as client:
                    client.starttls(context=client_context)
                    client.login(account.email, PASSWORD)
                    client.sendmail("alice@example.com", ["bob@example.net"],
                                    b"From: alice@example.com\r\nSubject: hooks\r\n\r\nhello\r\n")

            await in_thread(submit)
            await poll(lambda: len(receiver.requests) >= 2, 30, "two webhook requests")
            listed = await api.get(f"/api/v1/accounts/{account.id}/webhooks/{created.json()['id']}/deliveries")
        started.shutdown.set()

    kinds = []
    for request in receiver.requests:
        assert request.target == "/relay-events"
        assert webhooks.verify(
            secret, timestamp=request.headers["relay-webhook-timestamp"],
            signature=request.headers["relay-webhook-signature"], body=request.body,
        )
        event = json.loads(request.body)
        kinds.append(event["type"])
        assert event["account_id"] == str(account.id)
        assert event["data"]["envelope"] == {"mail_from": "alice@example.com", "rcpt_to": ["bob@example.net"]}
    assert sorted(kinds) == ["message.queued", "message.sent"]
    [sent] = [json.loads(r.body) for r in receiver.requests if json.loads(r.body)["type"] == "message.sent"]
    assert sent["data"]["provider"] == {"id": str(provider.id), "type": "smtp"}
    assert sent["data"]["response"].startswith("250")
    assert sent["data"]["attempt"] == 1
    [queued] = [json.loads(r.body) for r in receiver.requests if json.loads(r.body)["type"] == "message.queued"]
    assert queued["correlation_id"] == sent["correlation_id"] is not None
    assert queued["data"]["message_id"] == sent["data"]["message_id"]
    assert listed.status_code == 200
    assert {d["status"] for d in listed.json()["items"]} <= {"delivered", "pending"}
    assert "secret" not in listed.text and secret not in listed.text


async def _operator_key(storage: Storage) -> str:
    key = hashed_secrets.new_key(hashed_secrets.OPERATOR_KEY_PREFIX)
    await storage.admin_keys.create(name="test", key_hash=key.hash, key_prefix=key.prefix)
    return key.secret


async def test_a_worker_killed_before_its_webhook_was_answered_loses_no_event(
    storage: Storage, database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    hold = trio.Event()
    receiver = await httpserver.start(nursery, answers=[httpserver.Answer(release=hold)])
    account = await make_account(storage)
    hook = await endpoint(storage, account, receiver.url, kinds=(EventKind.MESSAGE_SENT,))
    async with aiosmtpd_upstream(None, tls="none", auth=False) as up:
        provider = await storage.providers.create(
            account_id=account.id, name="up", type=ProviderType.SMTP,
            config={"host": "127.0.0.1", "port": up.port, "tls": "none"},
        )
        await storage.accounts.update(account.id, default_provider_id=provider.id)
        [mid] = await storage.messages.enqueue_many([message(account, 0)])

        env = worker_env(database_url, tmp_path)
        env.update(RELAY_WEBHOOKS__ALLOW_HTTP="true", RELAY_WEBHOOKS__ALLOW_PRIVATE_NETWORKS="true",
                   RELAY_WEBHOOKS__POLL_INTERVAL="0.05", RELAY_WEBHOOKS__TIMEOUT="1")
        log = tmp_path / "worker.log"
        with log.open("wb") as stderr:
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "relay", "worker"], env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            )
        try:
            # The message is sent and its verdict committed; the event's request is
            # at the receiver, unanswered.
            await poll(lambda: receiver.requests or process.poll() is not None, START_TIMEOUT,
                       "the worker to post the message.sent event", log)
            assert process.returncode is None, log.read_text(errors="replace")
            process.kill()
            assert await process.wait() == -9
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    stored = await storage.messages.get(mid)
    assert stored is not None and stored.status is MessageStatus.SENT
    [delivery] = await deliveries(storage, hook)
    assert delivery.status is WebhookDeliveryStatus.PENDING and delivery.attempts == ()

    hold.set()  # the receiver answers from now on (the dead request's answer goes nowhere)
    # A timeout of 1 s makes the dead sender's lease 2 x 1 + 5 s.
    await start(nursery, storage, attrs.evolve(LOCAL, timeout=1))
    await poll(lambda: _delivered(storage, hook), 30, "the event to be delivered again")
    first, again = receiver.requests
    assert first.headers["relay-webhook-id"] == again.headers["relay-webhook-id"] == str(delivery.event_id)
    assert first.body == again.body
    assert json.loads(again.body)["data"]["message_id"] == str(mid)
    assert len(up.messages) == 1  # the mail itself went once


async def _delivered(storage: Storage, hook: object) -> bool:
    [delivery] = await deliveries(storage, hook)  # type: ignore[arg-type]
    return delivery.status is WebhookDeliveryStatus.DELIVERED
