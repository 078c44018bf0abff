"""IP credentials over the wire: smtplib from 127.0.0.1 against a real relay.

A credential for 127.0.0.0/8 lets the client submit without AUTH as the credential's
account, with every check an authenticated client gets; AUTH still wins; without a
credential (or with a disabled account) MAIL is refused as before.
"""

from __future__ import annotations

import ipaddress
import uuid

import pytest

from relay import models, networks
from relay.storage import DatabaseUnavailable

from .conftest import Relay, create_account, in_thread

MESSAGE = b"From: App <app@example.com>\r\nTo: a@example.net\r\nSubject: hi\r\n\r\nHello.\r\n"


async def _credential(relay: Relay, account: models.Account, network: str = "127.0.0.0/8") -> None:
    await relay.storage.ip_credentials.create(
        account_id=account.id, network=ipaddress.ip_network(network), limit=100
    )


def _queue_id(reply: bytes) -> uuid.UUID:
    return uuid.UUID(reply.decode().rsplit(" ", 1)[-1])


async def test_client_in_the_network_submits_without_auth(relay: Relay) -> None:
    await _credential(relay, relay.account)

    def session() -> tuple[int, bytes]:
        with relay.smtp() as client:  # no STARTTLS, no AUTH
            client.ehlo()
            client.mail("app@example.com")
            client.rcpt("a@example.net")
            return client.data(MESSAGE)

    code, text = await in_thread(session)
    assert code == 250, text
    stored = await relay.storage.messages.get(_queue_id(text), with_raw=True)
    assert stored is not None and stored.account_id == relay.account.id
    assert stored.client_ip == "127.0.0.1" and stored.tls is False
    # RFC 3848: not ESMTPA — how it was let in is in its trace header.
    assert b"with ESMTP id" in stored.raw and b"ESMTPA" not in stored.raw


async def test_without_a_credential_mail_is_refused(relay: Relay) -> None:
    other = await create_account(relay.storage, email="other@example.org", domains=("example.org",))
    await _credential(relay, other, "192.0.2.0/24")  # someone else's network, not ours

    def session() -> tuple[int, bytes]:
        with relay.smtp() as client:
            client.ehlo()
            return client.mail("app@example.com")

    code, text = await in_thread(session)
    assert code == 530 and text.startswith(b"5.7.0")


async def test_disabled_account_gets_nothing(relay: Relay) -> None:
    await _credential(relay, relay.account)
    await relay.storage.accounts.update(relay.account.id, disabled=True)

    def session() -> tuple[int, bytes]:
        with relay.smtp() as client:
            client.ehlo()
            return client.mail("app@example.com")

    code, _ = await in_thread(session)
    assert code == 530


async def test_auth_wins_over_the_address(relay: Relay) -> None:
    owner = await create_account(relay.storage, email="owner@example.org", domains=("example.org",))
    await _credential(relay, owner)

    def session() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        with relay.smtp() as client:
            relay.login(client)  # as relay.account (example.com), after STARTTLS
            # The credential's account could send as example.org; the AUTH'd one cannot.
            refused = client.mail("someone@example.org")
            client.rset()
            client.mail("app@example.com")
            client.rcpt("a@example.net")
            return refused, client.data(MESSAGE)

    refused, (code, text) = await in_thread(session)
    assert refused[0] == 553
    assert code == 250
    stored = await relay.storage.messages.get(_queue_id(text), with_raw=True)
    assert stored is not None and stored.account_id == relay.account.id
    assert b"with ESMTPSA" in stored.raw


async def test_credential_survives_starttls(relay: Relay) -> None:
    """STARTTLS forgets an AUTH (RFC 3207 §4.2), not the address the client is at."""
    await _credential(relay, relay.account)

    def session() -> tuple[int, bytes]:
        with relay.smtp() as client:
            client.ehlo()
            client.starttls(context=relay.client_context)
            client.ehlo()
            client.mail("app@example.com")
            client.rcpt("a@example.net")
            return client.data(MESSAGE)

    code, text = await in_thread(session)
    assert code == 250
    stored = await relay.storage.messages.get(_queue_id(text), with_raw=True)
    assert stored is not None and stored.tls is True and b"with ESMTPS id" in stored.raw


async def test_sender_domain_and_from_header_checks_still_apply(relay: Relay) -> None:
    await _credential(relay, relay.account)

    def session() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        with relay.smtp() as client:
            client.ehlo()
            envelope = client.mail("ceo@elsewhere.example")
            client.rset()
            client.mail("app@example.com")
            client.rcpt("a@example.net")
            header = client.data(b"From: ceo@elsewhere.example\r\nSubject: x\r\n\r\nx\r\n")
            return envelope, header

    envelope, header = await in_thread(session)
    assert envelope[0] == 553 and envelope[1].startswith(b"5.7.1")
    assert header[0] == 550 and header[1].startswith(b"5.7.1")
    assert (await relay.storage.messages.list(account_id=relay.account.id)) == []


async def test_message_rate_limit_still_applies(relay: Relay) -> None:
    await relay.storage.accounts.update(relay.account.id, messages_per_minute=1)
    await _credential(relay, relay.account)

    def session() -> tuple[int, int]:
        with relay.smtp() as client:
            client.ehlo()
            client.mail("app@example.com")
            client.rcpt("a@example.net")
            first, _ = client.data(MESSAGE)
            second, _ = client.mail("app@example.com")
            return first, second

    assert await in_thread(session) == (250, 450)


async def test_lookup_failure_is_a_temporary_refusal_and_the_session_goes_on(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _credential(relay, relay.account)
    real_match = relay.storage.ip_credentials.match
    calls = []

    async def down_once(address: object) -> object:
        calls.append(address)
        if len(calls) == 1:
            raise DatabaseUnavailable("database unavailable: test")
        return await real_match(address)  # type: ignore[arg-type]

    monkeypatch.setattr(relay.storage.ip_credentials, "match", down_once)

    def session() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        with relay.smtp() as client:
            client.ehlo()
            failed = client.mail("app@example.com")
            retried = client.mail("app@example.com")
            return failed, retried

    failed, retried = await in_thread(session)
    assert failed[0] == 451 and failed[1].startswith(b"4.3.0")
    assert retried[0] == 250
    assert calls == [ipaddress.ip_address("127.0.0.1")] * 2


async def test_one_lookup_per_session_a_refusal_included(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client repeating MAIL cannot make each one a database round trip."""
    calls = []
    real_match = relay.storage.ip_credentials.match

    async def counting(address: object) -> object:
        calls.append(address)
        return await real_match(address)  # type: ignore[arg-type]

    monkeypatch.setattr(relay.storage.ip_credentials, "match", counting)

    def session() -> list[int]:
        with relay.smtp() as client:
            client.ehlo()
            return [client.mail("app@example.com")[0] for _ in range(5)]

    assert await in_thread(session) == [530] * 5
    assert len(calls) == 1


@pytest.mark.parametrize(("peer", "expected"), [
    ("127.0.0.1", "127.0.0.1"),
    ("::ffff:127.0.0.1", "127.0.0.1"),
    ("fe80::1%eth0", "fe80::1"),
    ("2001:db8::1", "2001:db8::1"),
    ("unknown", None),
])
def test_client_address_is_the_peer_ipv4_mapped_as_ipv4(peer: str, expected: str | None) -> None:
    address = networks.client_address(peer)
    assert (None if address is None else str(address)) == expected
