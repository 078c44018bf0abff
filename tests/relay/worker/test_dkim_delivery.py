"""A DKIM-signed message still verifies where it arrives: smtplib → ``relay smtp``
(signing with the account's key) → queue → worker → aiosmtpd upstream, and dkimpy
verifies what the upstream received against the key's DNS record."""

from __future__ import annotations

import base64
import functools
import os
import smtplib
import ssl
import uuid
from pathlib import Path

import dkim as dkimpy
import pytest
import trio
import trustme

from relay import composition, dkim
from relay.config import Config
from relay.models import MessageStatus, ProviderType

from ..smtp import conftest as smtp_fixtures
from ..smtp.conftest import PASSWORD, create_account, in_thread
from .upstream import PASSWORD as UPSTREAM_PASSWORD
from .upstream import USER as UPSTREAM_USER
from .upstream import aiosmtpd_upstream

KEK = base64.b64encode(os.urandom(32)).decode()
SUBMITTED = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"Subject: signed end to end\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b".a line that starts with a dot\r\n"
    + b"a long line " * 100 + b"\r\n"  # over 998 octets: split by the SMTP provider
)

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
        "RELAY_DKIM__KEY_ENCRYPTION_KEY": KEK,
    }


async def test_delivered_message_still_verifies(
    relay_config: Config, client_context: ssl.SSLContext, ca: trustme.CA, tmp_path: Path
) -> None:
    upstream_ca = tmp_path / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(upstream_ca))
    kek = dkim.KeyEncryption.from_setting(KEK)
    assert kek is not None
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
        pair = dkim.generate(dkim.RSA_SHA256)
        key_id = uuid.uuid4()
        await storage.dkim_keys.create(
            key_id=key_id, account_id=account.id, domain="example.com", selector="e2e",
            algorithm=pair.algorithm, private_key=kek.encrypt(pair.private, key_id=key_id.bytes),
            public_key=pair.public_key, limit=20,
        )
        record = dkim.dns_record(domain="example.com", selector="e2e", algorithm=pair.algorithm,
                                 public_key=pair.public_key)

        def submit() -> None:
            port = started.smtp.ports[0]
            with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as client:
                client.ehlo()
                client.starttls(context=client_context)
                client.ehlo()
                client.login(account.email, PASSWORD)
                client.sendmail("alice@example.com", ["bob@example.net"], SUBMITTED)

        await in_thread(submit)
        with trio.fail_after(20):
            while True:
                [message] = await storage.messages.list(account_id=account.id) or [None]
                if message is not None and message.status is MessageStatus.SENT and up.messages:
                    break
                await trio.sleep(0.05)
        started.shutdown.set()

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        return record.value.encode() if name == f"{record.name}.".encode() else None

    [got] = up.messages
    assert got.content.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    # The long line was cut before signing (no canonicalisation survives the SMTP
    # provider cutting it afterwards), so the provider had nothing left to cut.
    assert dkimpy.verify(got.content, dnsfunc=lookup)
    assert max(map(len, got.content.split(b"\r\n"))) == dkim.MAX_LINE
