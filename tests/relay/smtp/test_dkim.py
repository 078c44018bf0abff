"""DKIM signing at submission: smtplib over STARTTLS + AUTH against a real relay, keys
made through the real API, and the stored message verified by dkimpy against the DNS
record the API showed.

Also the per-account key cache (``relay.smtp.dkim.DkimSigner``) on trio's MockClock:
one load per account per ``dkim.key_cache_ttl``, a newly enabled key signs after it.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import dkim as dkimpy
import pytest
import structlog
import trio

from relay import dkim, hashed_secrets
from relay.api.app import create_app
from relay.config import Config
from relay.smtp.dkim import DkimSigner, KeysUnavailable
from relay.smtp.server import SmtpServer
from relay.storage import Storage

from .conftest import Relay, create_account, in_thread

KEK = base64.b64encode(os.urandom(32)).decode()
MESSAGE = (
    b"From: App <app@example.com>\r\n"
    b"To: a@example.net\r\n"
    b"Subject: signed at submission\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"Hello.\r\n"
)


@pytest.fixture
def smtp_env() -> dict[str, str]:
    return {"RELAY_DKIM__KEY_ENCRYPTION_KEY": KEK}


async def make_key(relay: Relay, account_id: uuid.UUID, **body: Any) -> dict[str, Any]:
    """A key made by ``POST /api/v1/accounts/{id}/dkim-keys`` (operator key)."""
    operator = hashed_secrets.new_key(hashed_secrets.OPERATOR_KEY_PREFIX)
    await relay.storage.admin_keys.create(name="t", key_hash=operator.hash, key_prefix=operator.prefix)
    client = create_app(relay.started.runtime).test_client()
    response = await client.post(
        f"/api/v1/accounts/{account_id}/dkim-keys", json=body,
        headers={"Authorization": f"Bearer {operator.secret}"},
    )
    data: dict[str, Any] = await response.get_json()
    assert response.status_code == 201, data
    return data


def dns_for(*keys: dict[str, Any]) -> Callable[..., bytes | None]:
    table = {f"{k['dns_record']['name']}.".encode(): k["dns_record"]["value"].encode() for k in keys}

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        return table.get(name)

    return lookup


def submit(relay: Relay, message: bytes = MESSAGE) -> Callable[[], tuple[int, bytes]]:
    def session() -> tuple[int, bytes]:
        with relay.smtp() as client:
            relay.login(client)
            client.mail("app@example.com")
            client.rcpt("a@example.net")
            return client.data(message)

    return session


async def stored_raw(relay: Relay, reply: bytes) -> bytes:
    queue_id = uuid.UUID(reply.decode().rsplit(" ", 1)[-1])
    stored = await relay.storage.messages.get(queue_id, with_raw=True)
    assert stored is not None and stored.raw is not None
    return stored.raw


@pytest.mark.parametrize("algorithm", dkim.ALGORITHMS)
async def test_message_is_signed_with_the_accounts_key(relay: Relay, algorithm: str) -> None:
    key = await make_key(relay, relay.account.id, domain="example.com", selector="s1",
                         algorithm=algorithm)
    code, text = await in_thread(submit(relay))
    assert code == 250, text
    raw = await stored_raw(relay, text)
    assert raw.startswith(b"DKIM-Signature: v=1; a=" + algorithm.encode())
    assert raw.count(b"DKIM-Signature:") == 1
    assert b" d=example.com;" in raw and b" s=s1;" in raw
    assert dkimpy.verify(raw, dnsfunc=dns_for(key))
    # What the relay added before signing (its trace header) is kept, after the signature.
    assert b"\r\nReceived: from client.test" in raw
    assert not dkimpy.verify(b"From: evil@example.org\r\n" + raw, dnsfunc=dns_for(key))


async def test_rotation_two_enabled_keys_two_signatures(relay: Relay) -> None:
    old = await make_key(relay, relay.account.id, domain="example.com", selector="2025")
    new = await make_key(relay, relay.account.id, domain="example.com", selector="2026",
                         algorithm="ed25519-sha256")
    code, text = await in_thread(submit(relay))
    assert code == 250
    raw = await stored_raw(relay, text)
    assert raw.count(b"DKIM-Signature:") == 2
    verifier = dkimpy.DKIM(raw)
    lookup = dns_for(old, new)
    assert verifier.verify(idx=0, dnsfunc=lookup) and verifier.verify(idx=1, dnsfunc=lookup)
    assert {verifier.verify(idx=i, dnsfunc=dns_for(new)) for i in (0, 1)} == {True, False}


async def test_no_key_for_the_from_domain_no_signature(relay: Relay) -> None:
    account = await create_account(relay.storage, email="multi@example.com",
                                   domains=("example.com", "example.org"))
    await make_key(relay, account.id, domain="example.org", selector="s1")
    disabled = await make_key(relay, account.id, domain="example.com", selector="off")
    await relay.storage.dkim_keys.set_enabled(uuid.UUID(disabled["id"]), False)

    def session() -> list[tuple[int, bytes]]:
        with relay.smtp() as client:
            relay.login(client, user="multi@example.com")
            replies = []
            for message in (MESSAGE,  # example.com: its only key is disabled
                            # two From domains: none signs for the other
                            MESSAGE.replace(b"From: App <app@example.com>",
                                            b"From: app@example.com, b@example.org")):
                client.mail("app@example.com")
                client.rcpt("a@example.net")
                replies.append(client.data(message))
            return replies

    for code, text in await in_thread(session):
        assert code == 250
        assert b"DKIM-Signature" not in await stored_raw(relay, text)


async def test_undecryptable_key_is_451_and_nothing_stored(relay: Relay) -> None:
    """A key encrypted under another KEK: the client is told to retry; nothing unsigned leaves."""
    other = dkim.KeyEncryption(os.urandom(32))
    pair = dkim.generate(dkim.ED25519_SHA256)
    key_id = uuid.uuid4()
    await relay.storage.dkim_keys.create(
        key_id=key_id, account_id=relay.account.id, domain="example.com", selector="s1",
        algorithm=pair.algorithm, private_key=other.encrypt(pair.private, key_id=key_id.bytes),
        public_key=pair.public_key, limit=20,
    )
    code, text = await in_thread(submit(relay))
    assert code == 451 and text.startswith(b"4.3.0") and b"DKIM" in text
    assert await relay.storage.messages.list(account_id=relay.account.id) == []


async def test_header_dkimpy_cannot_parse_is_550(relay: Relay) -> None:
    await make_key(relay, relay.account.id, domain="example.com", selector="s1",
                   algorithm="ed25519-sha256")
    code, text = await in_thread(submit(relay, MESSAGE.replace(b"Subject:", b"Subject :")))
    assert code == 550 and text.startswith(b"5.6.0")


class TestMemoryBudget:
    """Signing holds SIGNING_COPIES x the message; it is reserved first (452 if it cannot be)."""

    @pytest.fixture
    def smtp_env(self) -> dict[str, str]:
        # DATA reserves 2 x 64 KiB; a 30 kB message needs 2 x 30 kB unsigned, 6 x 30 kB signed.
        return {"RELAY_DKIM__KEY_ENCRYPTION_KEY": KEK, "RELAY_SMTP__MEMORY_BUDGET": "150000"}

    async def test_signing_that_does_not_fit_is_452(self, relay: Relay) -> None:
        big = MESSAGE + (b"x" * 76 + b"\r\n") * 390  # about 30 kB
        assert 30_000 < len(big) < 2 * 64 * 1024 // 4
        await make_key(relay, relay.account.id, domain="example.com", selector="s1",
                       algorithm="ed25519-sha256")
        code, text = await in_thread(submit(relay, big))
        assert code == 452 and text.startswith(b"4.3.1")
        code, text = await in_thread(submit(relay))  # a small one signs
        assert code == 250 and (await stored_raw(relay, text)).startswith(b"DKIM-Signature:")
        # Unsigned (another From domain of the account's: no key), the big one fits.
        await relay.storage.accounts.update(relay.account.id, allowed_domains=["example.com", "example.org"])
        code, _ = await in_thread(submit(relay, big.replace(b"app@example.com>", b"app@example.org>")))
        assert code == 250


async def store_key(
    storage: Storage, account_id: uuid.UUID, kek: dkim.KeyEncryption, selector: str = "s1",
    *, enabled: bool = True,
) -> uuid.UUID:
    """An Ed25519 key for example.com stored as the API stores one: encrypted under ``kek``."""
    pair = dkim.generate(dkim.ED25519_SHA256)
    key_id = uuid.uuid4()
    await storage.dkim_keys.create(
        key_id=key_id, account_id=account_id, domain="example.com", selector=selector,
        algorithm=pair.algorithm, private_key=kek.encrypt(pair.private, key_id=key_id.bytes),
        public_key=pair.public_key, limit=20, enabled=enabled,
    )
    return key_id


# ---------------------------------------------------------------- the cache


async def test_keys_are_cached_per_account_for_the_ttl(
    storage: Storage, mock_clock: trio.testing.MockClock
) -> None:
    kek = dkim.KeyEncryption(os.urandom(32))
    account = await create_account(storage)

    async def add(selector: str, enabled: bool = True) -> uuid.UUID:
        return await store_key(storage, account.id, kek, selector, enabled=enabled)

    signer = DkimSigner(storage, kek=kek, ttl=5.0)
    assert await signer.keys_for(account.id, "example.com") == ()  # no keys: cached too
    later = await add("s1")
    assert await signer.keys_for(account.id, "example.com") == ()
    assert signer.statistics().loads == 1
    mock_clock.jump(5.0)
    [key] = await signer.keys_for(account.id, "example.com")
    assert key.selector == "s1" and signer.statistics().loads == 2
    assert await signer.keys_for(account.id, "example.org") == ()  # same entry, other domain
    assert signer.statistics().loads == 2

    await storage.dkim_keys.set_enabled(later, False)
    mock_clock.jump(4.9)
    assert len(await signer.keys_for(account.id, "example.com")) == 1
    mock_clock.jump(0.1)
    assert await signer.keys_for(account.id, "example.com") == ()


async def test_concurrent_loads_share_one_query(storage: Storage) -> None:
    account = await create_account(storage)
    signer = DkimSigner(storage, kek=None, ttl=5.0)
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(signer.keys_for, account.id, "example.com")
    assert signer.statistics().loads == 1


async def test_enabled_key_without_kek_is_unavailable_with_the_setting_named(storage: Storage) -> None:
    account = await create_account(storage)
    kek = dkim.KeyEncryption(os.urandom(32))
    await store_key(storage, account.id, kek)
    with pytest.raises(KeysUnavailable, match="dkim.key_encryption_key is not set"):
        await DkimSigner(storage, kek=None, ttl=5.0).keys_for(account.id, "example.com")
    # Nothing was cached: the next message asks again.
    signer = DkimSigner(storage, kek=kek, ttl=5.0)
    assert len(await signer.keys_for(account.id, "example.com")) == 1


async def test_unusable_keys_are_reported_at_start(storage: Storage) -> None:
    account = await create_account(storage)
    kek, other = dkim.KeyEncryption(os.urandom(32)), dkim.KeyEncryption(os.urandom(32))
    await store_key(storage, account.id, kek, "s1")
    await store_key(storage, account.id, kek, "s2", enabled=False)
    with structlog.testing.capture_logs() as lines:
        missing = await DkimSigner(storage, kek=None, ttl=5.0).check_keys()
        wrong = await DkimSigner(storage, kek=other, ttl=5.0).check_keys()
        right = await DkimSigner(storage, kek=kek, ttl=5.0).check_keys()
    # only the enabled key counts; each problem names the key and what to do
    assert len(missing) == 1 and "s1._domainkey.example.com" in missing[0]
    assert "dkim.key_encryption_key is not set" in missing[0]
    assert len(wrong) == 1 and "s1._domainkey.example.com" in wrong[0]
    assert right == []
    errors = [line for line in lines if line["log_level"] == "error"]
    assert [line["problem"] for line in errors] == missing + wrong


async def test_the_smtp_service_reports_an_unusable_key_when_it_starts(
    relay_config: Config, storage: Storage
) -> None:
    """As ``serve_smtp`` starts it: ``prepare`` checks the keys before listening."""
    account = await create_account(storage)
    kek = dkim.KeyEncryption(base64.b64decode(KEK))
    await store_key(storage, account.id, kek)
    for setting, unusable in ((KEK, False), ("", True)):
        config = attrs.evolve(relay_config, dkim=attrs.evolve(relay_config.dkim, key_encryption_key=setting))
        with structlog.testing.capture_logs() as lines:
            await SmtpServer(config, storage, ssl_context=None).prepare()
        errors = [line for line in lines if line["log_level"] == "error"]
        assert bool(errors) is unusable
        if unusable:
            assert "s1._domainkey.example.com" in errors[0]["problem"]
