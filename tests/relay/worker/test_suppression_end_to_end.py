"""A bounce suppresses: smtplib → relay → worker → aiosmtpd refusing at RCPT, then the
next RCPT TO for the address over SMTP is refused by the relay itself.

As in ``test_end_to_end``, the relay runs as ``relay serve`` does (smtp + worker) and
the test polls the database under ``fail_after`` while delivery happens on real sockets.
"""

from __future__ import annotations

import functools
import json
import smtplib
import ssl
import uuid
from pathlib import Path

import psycopg2
import pytest
import trio
import trustme

from relay import composition
from relay.config import Config
from relay.models import MessageStatus, ProviderType, SuppressionSource

from ..smtp import conftest as smtp_fixtures
from ..smtp.conftest import PASSWORD, create_account, in_thread
from .upstream import PASSWORD as UPSTREAM_PASSWORD
from .upstream import USER as UPSTREAM_USER
from .upstream import aiosmtpd_upstream

ca = smtp_fixtures.ca
tls_files = smtp_fixtures.tls_files
client_context = smtp_fixtures.client_context
relay_config = smtp_fixtures.relay_config

GONE = "gone@example.net"
BLOCKED = "blocked@example.net"
BODY = b"From: alice@example.com\r\nTo: gone@example.net\r\nSubject: s\r\n\r\nhello\r\n"


@pytest.fixture
def smtp_env() -> dict[str, str]:
    return {
        "RELAY_WORKER__POLL_INTERVAL": "0.05",
        "RELAY_WORKER__CONNECT_TIMEOUT": "5",
        "RELAY_WORKER__SEND_TIMEOUT": "5",
        # The bounce must act at the very next RCPT (by default within 2 s).
        "RELAY_SMTP__SUPPRESSION_CACHE_TTL": "0",
    }


def _sql(url: str, statement: str, *args: object) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


async def test_a_hard_bounce_suppresses_the_address_and_a_policy_refusal_does_not(
    relay_config: Config, client_context: ssl.SSLContext, ca: trustme.CA, tmp_path: Path
) -> None:
    upstream_ca = tmp_path / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(upstream_ca))
    url = relay_config.database.url
    refuse = {GONE: "550 5.1.1 no such user", BLOCKED: "550 5.7.1 relaying denied"}
    async with aiosmtpd_upstream(ca, refuse=refuse) as up, trio.open_nursery() as nursery:
        started: composition.Started = await nursery.start(
            functools.partial(composition.serve, relay_config, services=("smtp", "worker"), handle_signals=False)
        )
        storage = started.runtime.storage
        account = await create_account(storage)
        # The webhook endpoints API is the lead's (main); the row is all the outbox needs.
        _sql(url, """INSERT INTO webhook_endpoints (id, account_id, url, events, enabled, secret, description)
                     VALUES (%s, %s, 'https://hooks.example/x', %s, true, 'k', '')""",
             str(uuid.uuid4()), str(account.id), ["recipient.suppressed", "message.failed"])
        provider = await storage.providers.create(
            account_id=account.id, name="upstream", type=ProviderType.SMTP,
            config={"host": "127.0.0.1", "port": up.port, "tls": "starttls", "ca_file": str(upstream_ca),
                    "username": UPSTREAM_USER, "password": UPSTREAM_PASSWORD},
        )
        await storage.accounts.update(account.id, default_provider_id=provider.id)

        def client() -> smtplib.SMTP:
            c = smtplib.SMTP("127.0.0.1", started.smtp.ports[0], local_hostname="client.test", timeout=10)
            c.ehlo()
            c.starttls(context=client_context)
            c.ehlo()
            c.login(account.email, PASSWORD)
            return c

        def submit() -> None:
            with client() as c:
                c.sendmail("alice@example.com", [GONE, BLOCKED], BODY)

        await in_thread(submit)
        with trio.fail_after(20):
            while True:
                [message] = await storage.messages.list(account_id=account.id) or [None]
                if message is not None and message.status is MessageStatus.FAILED:
                    break
                await trio.sleep(0.05)

        entries = await storage.suppressions.list(account_id=account.id)
        events = [json.loads(body) for (body,) in _sql(
            url, "SELECT body FROM webhook_events WHERE kind = 'recipient.suppressed' AND account_id = %s",
            str(account.id))]

        def again() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
            with client() as c:
                c.mail("alice@example.com")
                return c.rcpt(GONE), c.rcpt(BLOCKED)

        gone_reply, blocked_reply = await in_thread(again)
        started.shutdown.set()

    assert up.messages == []
    # Only the address refused because of the address is on the list, with the remote's words.
    [entry] = entries
    assert (entry.address, entry.source, entry.message_id) == (GONE, SuppressionSource.BOUNCE, message.id)
    assert entry.response == "550 5.1.1 no such user" and entry.expires_at is None
    [event] = events
    assert event["type"] == "recipient.suppressed"
    assert event["data"]["address"] == GONE and event["data"]["source"] == "bounce"
    assert event["data"]["message_id"] == str(message.id)
    assert event["data"]["provider"] == {"id": str(provider.id), "type": "smtp"}
    assert event["data"]["response"] == "550 5.1.1 no such user"
    # The next RCPT TO is refused by the relay; the policy refusal is not remembered.
    assert gone_reply[0] == 550 and gone_reply[1].startswith(b"5.1.1 <gone@example.net>")
    assert b"(bounce)" in gone_reply[1] and str(entry.id).encode() in gone_reply[1]
    assert blocked_reply[0] == 250
