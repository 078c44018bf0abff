"""Logins and IP credentials answered from memory (``smtp.account_cache_ttl``).

A client that connects once per message costs one database read for its first
connection and none after; a change made through *another* pool (another process's
storage: its own connections, its own listener) acts on the next connection as soon
as the NOTIFY reaches the relay; while the relay's listener is lost every connection
reads the database again.
"""

from __future__ import annotations

import ipaddress
import smtplib
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from relay import hashed_secrets
from relay.storage import Storage

from ..api.test_key_cache import wait_heard, wait_listening
from .conftest import PASSWORD, Relay, in_thread

MESSAGE = b"From: App <app@example.com>\r\nTo: a@example.net\r\nSubject: hi\r\n\r\nHello.\r\n"


class Reads:
    """Counts the calls that reach one storage method."""

    def __init__(self) -> None:
        self.count = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await fn(*args, **kwargs)

        return counted


def _count(monkeypatch: pytest.MonkeyPatch, repo: object, method: str) -> Reads:
    reads = Reads()
    monkeypatch.setattr(repo, method, reads.wrap(getattr(repo, method)))
    return reads


@pytest.fixture
def credential_reads(relay: Relay, monkeypatch: pytest.MonkeyPatch) -> Reads:
    return _count(monkeypatch, relay.storage.ip_credentials, "match")


@pytest.fixture
def login_reads(relay: Relay, monkeypatch: pytest.MonkeyPatch) -> Reads:
    return _count(monkeypatch, relay.storage.accounts, "get_by_email")


def _submit_without_auth(relay: Relay) -> int:
    with relay.smtp() as client:
        client.ehlo()
        code, _ = client.mail("app@example.com")
        if code != 250:
            return code
        client.rcpt("a@example.net")
        return client.data(MESSAGE)[0]


def _login(relay: Relay, password: str = PASSWORD) -> int:
    with relay.smtp() as client:
        try:
            relay.login(client, password)
        except smtplib.SMTPAuthenticationError as exc:
            return exc.smtp_code
        return 235


async def _credential(relay: Relay) -> uuid.UUID:
    created = await relay.storage.ip_credentials.create(
        account_id=relay.account.id, network=ipaddress.ip_network("127.0.0.0/8"), limit=10
    )
    return created.id


async def test_connections_from_one_address_cost_one_credential_read(
    relay: Relay, credential_reads: Reads
) -> None:
    await _credential(relay)
    await wait_listening(relay.storage)
    for _ in range(3):
        assert await in_thread(lambda: _submit_without_auth(relay)) == 250
    assert credential_reads.count == 1


async def test_a_credential_deleted_through_another_pool_acts_on_the_next_connection(
    relay: Relay, storage: Storage, credential_reads: Reads
) -> None:
    credential = await _credential(relay)
    await wait_listening(relay.storage)
    assert await in_thread(lambda: _submit_without_auth(relay)) == 250

    heard = relay.storage.key_changes.received
    assert await storage.ip_credentials.delete(credential)
    await wait_heard(relay.storage, heard)
    assert await in_thread(lambda: _submit_without_auth(relay)) == 530
    assert credential_reads.count == 2


async def test_an_address_without_a_credential_is_remembered_until_one_is_created(
    relay: Relay, storage: Storage, credential_reads: Reads
) -> None:
    await wait_listening(relay.storage)
    assert await in_thread(lambda: _submit_without_auth(relay)) == 530
    assert await in_thread(lambda: _submit_without_auth(relay)) == 530
    assert credential_reads.count == 1

    heard = relay.storage.key_changes.received
    await storage.ip_credentials.create(
        account_id=relay.account.id, network=ipaddress.ip_network("127.0.0.0/8"), limit=10
    )
    await wait_heard(relay.storage, heard)
    assert await in_thread(lambda: _submit_without_auth(relay)) == 250


async def test_logins_cost_one_account_read(relay: Relay, login_reads: Reads) -> None:
    await wait_listening(relay.storage)
    for _ in range(3):
        assert await in_thread(lambda: _login(relay)) == 235
    assert login_reads.count == 1


async def test_a_password_changed_through_another_pool_acts_on_the_next_login(
    relay: Relay, storage: Storage, login_reads: Reads
) -> None:
    await wait_listening(relay.storage)
    assert await in_thread(lambda: _login(relay)) == 235

    heard = relay.storage.key_changes.received
    new_hash = await hashed_secrets.hash_password_async("another password", rounds=4)
    assert await storage.accounts.update(relay.account.id, password_hash=new_hash)
    await wait_heard(relay.storage, heard)
    assert await in_thread(lambda: _login(relay)) == 535
    assert await in_thread(lambda: _login(relay, "another password")) == 235


async def test_an_account_disabled_through_another_pool_is_refused_at_the_next_login(
    relay: Relay, storage: Storage
) -> None:
    await _credential(relay)
    await wait_listening(relay.storage)
    assert await in_thread(lambda: _login(relay)) == 235
    assert await in_thread(lambda: _submit_without_auth(relay)) == 250

    heard = relay.storage.key_changes.received
    assert await storage.accounts.update(relay.account.id, disabled=True)
    await wait_heard(relay.storage, heard)
    assert await in_thread(lambda: _login(relay)) == 535
    assert await in_thread(lambda: _submit_without_auth(relay)) == 530


async def test_while_the_listener_is_down_every_connection_reads(
    relay: Relay, credential_reads: Reads, login_reads: Reads, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state a lost listener leaves (``listening`` false until it is back; the
    loss itself is shown in tests/relay/api/test_key_cache.py): nothing is served
    from memory, since a change could commit unheard."""
    await _credential(relay)
    await wait_listening(relay.storage)
    monkeypatch.setattr(relay.storage.key_changes, "listening", False)
    for _ in range(2):
        assert await in_thread(lambda: _submit_without_auth(relay)) == 250
        assert await in_thread(lambda: _login(relay)) == 235
    assert (credential_reads.count, login_reads.count) == (2, 2)
