"""The whole path: smtplib → ``relay smtp`` (STARTTLS + AUTH) → queue → worker → aiosmtpd.

The relay runs as ``relay serve`` does (``composition.serve`` with the smtp and worker
services); the upstream is aiosmtpd with STARTTLS (trustme) and AUTH, configured as the
account's default provider through storage. Delivery happens on real sockets in the
background, so the test polls the database in small steps under ``fail_after``.
"""

from __future__ import annotations

import functools
import smtplib
import ssl
from pathlib import Path

import pytest
import structlog
import trio
import trustme

from relay import composition
from relay.config import Config
from relay.models import DeliveryOutcome, MessageStatus, ProviderType

from ..smtp import conftest as smtp_fixtures
from ..smtp.conftest import PASSWORD, create_account, in_thread
from .upstream import PASSWORD as UPSTREAM_PASSWORD
from .upstream import USER as UPSTREAM_USER
from .upstream import aiosmtpd_upstream

SUBMITTED = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"Subject: end to end\r\n"
    b"Message-ID: <e2e@example.com>\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b".a line that starts with a dot\r\n"
)
RCPT = ["bob@example.net", "carol@example.org", "hidden@example.com"]  # the last one only Bcc


# The SMTP service's fixtures (config, certificate, CA, client TLS), reused by name.
ca = smtp_fixtures.ca
tls_files = smtp_fixtures.tls_files
client_context = smtp_fixtures.client_context
relay_config = smtp_fixtures.relay_config


@pytest.fixture
def smtp_env() -> dict[str, str]:
    return {
        "RELAY_WORKER__POLL_INTERVAL": "0.05",
        "RELAY_WORKER__CONNECT_TIMEOUT": "5",
        "RELAY_WORKER__SEND_TIMEOUT": "5",
    }


async def test_submitted_mail_reaches_the_upstream_provider(
    relay_config: Config, client_context: ssl.SSLContext, ca: trustme.CA, tmp_path: Path
) -> None:
    upstream_ca = tmp_path / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(upstream_ca))
    capture = structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars])
    with capture as lines:
        async with aiosmtpd_upstream(ca) as up, trio.open_nursery() as nursery:
            started: composition.Started = await nursery.start(
                functools.partial(composition.serve, relay_config, services=("smtp", "worker"), handle_signals=False)
            )
            storage = started.runtime.storage
            account = await create_account(storage)
            provider = await storage.providers.create(
                account_id=account.id, name="upstream", type=ProviderType.SMTP,
                config={"host": "127.0.0.1", "port": up.port, "tls": "starttls", "ca_file": str(upstream_ca),
                        "username": UPSTREAM_USER, "password": UPSTREAM_PASSWORD},
            )
            await storage.accounts.update(account.id, default_provider_id=provider.id)

            def submit() -> None:
                port = started.smtp.ports[0]
                with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as client:
                    client.ehlo()
                    client.starttls(context=client_context)
                    client.ehlo()
                    client.login(account.email, PASSWORD)
                    client.sendmail("alice@example.com", RCPT, SUBMITTED)

            await in_thread(submit)
            with trio.fail_after(20):
                while True:
                    [message] = await storage.messages.list(account_id=account.id) or [None]
                    if message is not None and message.status is MessageStatus.SENT and up.messages:
                        break
                    await trio.sleep(0.05)
            stored = await storage.messages.get(message.id, with_raw=True)
            logs = await storage.delivery_logs.list_for_message(message.id)
            started.shutdown.set()

    assert stored is not None and stored.raw is not None
    [got] = up.messages
    assert got.content == stored.raw  # the bytes as queued
    assert got.content.startswith(b"Received: from client.test")  # the relay's trace header
    assert got.content.endswith(SUBMITTED.partition(b"\r\n\r\n")[2])  # the body, dots and all
    assert got.mail_from == "alice@example.com"
    assert got.rcpt_tos == tuple(RCPT)  # the Bcc recipient too
    assert b"hidden@example.com" not in got.content
    assert [(log.outcome, log.provider_id, log.provider_type) for log in logs] == [
        (DeliveryOutcome.DELIVERED, provider.id, "smtp")]
    assert logs[0].response == "250 2.0.0 OK queued"
    assert up.auth_failures == 0
    # One correlation id from the SMTP session to the worker's lines about the message.
    [accepted] = [line for line in lines if line["event"] == "message accepted"]
    [delivered] = [line for line in lines if line["event"] == "message delivered"]
    assert accepted["correlation_id"] == stored.correlation_id == delivered["correlation_id"]
    assert delivered["message_id"] == str(message.id) == accepted["queue_id"]
    assert delivered["account_id"] == str(account.id)
