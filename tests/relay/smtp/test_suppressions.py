"""RCPT TO and the account's suppression list: 550 5.1.1 at RCPT, never accept-then-drop."""

from __future__ import annotations

import datetime as dt
import smtplib
from typing import Any

import psycopg2
import pytest

from relay.storage import DatabaseUnavailable

from .conftest import Relay, create_account, in_thread

BODY = b"From: app@example.com\r\nSubject: hi\r\n\r\nhello\r\n"


def _sql(url: str, statement: str, *args: object) -> None:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
    finally:
        conn.close()


def _rcpts(relay: Relay, recipients: list[str]) -> tuple[list[tuple[int, bytes]], tuple[int, bytes]]:
    """One transaction: each RCPT's reply, then the end of data's (or RSET's when none
    was accepted)."""
    with relay.smtp() as client:
        relay.login(client)
        client.mail("app@example.com")
        replies = [client.rcpt(r) for r in recipients]
        if any(code == 250 for code, _ in replies):
            return replies, client.data(BODY)
        return replies, client.rset()


async def test_suppressed_recipient_is_refused_at_rcpt_and_the_others_go_on(relay: Relay) -> None:
    entry = (await relay.storage.suppressions.add(
        account_id=relay.account.id, address="Gone@Example.net", reason="asked"
    )).entry
    replies, data = await in_thread(lambda: _rcpts(
        relay, ["ok@example.net", "gone@example.NET", "other@example.org"]
    ))
    assert [code for code, _ in replies] == [250, 550, 250]
    text = replies[1][1].decode()
    assert text.startswith("5.1.1 <gone@example.NET>: recipient is on this account's suppression list (manual)")
    assert f"DELETE /api/v1/accounts/{relay.account.id}/suppressions/{entry.id}" in text
    assert data[0] == 250
    [message] = await relay.storage.messages.list(account_id=relay.account.id)
    assert message.rcpt_to == ("ok@example.net", "other@example.org")

    # Lifted: the next RCPT is accepted.
    assert await relay.storage.suppressions.delete(entry.id, account_id=relay.account.id)
    replies, _ = await in_thread(lambda: _rcpts(relay, ["gone@example.net"]))
    assert [code for code, _ in replies] == [250]


async def test_an_expired_entry_does_not_refuse(relay: Relay, database_url: str) -> None:
    entry = (await relay.storage.suppressions.add(
        account_id=relay.account.id, address="later@example.net", reason="",
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )).entry
    replies, _ = await in_thread(lambda: _rcpts(relay, ["later@example.net"]))
    assert [code for code, _ in replies] == [550]
    _sql(database_url, "UPDATE suppressions SET expires_at = now() - interval '1 second' WHERE id = %s",
         str(entry.id))
    replies, data = await in_thread(lambda: _rcpts(relay, ["later@example.net"]))
    assert [code for code, _ in replies] == [250] and data[0] == 250


async def test_another_accounts_entry_does_not_refuse(relay: Relay) -> None:
    other = await create_account(relay.storage, email="other@example.com")
    await relay.storage.suppressions.add(account_id=other.id, address="shared@example.net", reason="")
    replies, data = await in_thread(lambda: _rcpts(relay, ["shared@example.net"]))
    assert [code for code, _ in replies] == [250] and data[0] == 250


async def test_an_account_without_entries_costs_no_lookup_per_rcpt(relay: Relay, monkeypatch: pytest.MonkeyPatch) -> None:
    """Most accounts have no list: their RCPTs are answered from memory, not by a query each."""
    repository = relay.storage.suppressions
    lookups: list[Any] = []
    real = repository.matching

    def counting(account_id: Any, addresses: Any) -> Any:
        lookups.append(list(addresses))
        return real(account_id, addresses)

    monkeypatch.setattr(repository, "matching", counting)

    def session() -> list[int]:
        with relay.smtp() as client:
            relay.login(client)
            client.mail("app@example.com")
            codes = [client.rcpt(f"r{n}@example.net")[0] for n in range(5)]
            codes.append(client.data(BODY)[0])
            return codes

    assert await in_thread(session) == [250] * 6
    assert lookups == []


async def test_lookup_failure_is_451_and_the_session_goes_on(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is real; only the one lookup is made to fail, as an outage would."""
    repository = relay.storage.suppressions
    # An account with a list gets a lookup per RCPT (one without is answered from memory).
    await repository.add(account_id=relay.account.id, address="other@example.net", reason="")
    real = repository.matching
    calls: list[Any] = []

    def down_once(account_id: Any, addresses: Any) -> Any:
        calls.append(list(addresses))
        if len(calls) == 1:
            async def fail() -> Any:
                raise DatabaseUnavailable("database unavailable: test")
            return fail()
        return real(account_id, addresses)

    monkeypatch.setattr(repository, "matching", down_once)

    def session() -> list[tuple[int, bytes]]:
        with relay.smtp() as client:
            relay.login(client)
            client.mail("app@example.com")
            replies = [client.rcpt("x@example.net"), client.rcpt("x@example.net")]
            replies.append(client.data(BODY))
            return replies

    failed, retried, data = await in_thread(session)
    assert failed[0] == 451 and failed[1].startswith(b"4.3.0")
    assert retried[0] == 250 and data[0] == 250
    assert calls == [["x@example.net"]] * 2


async def test_every_recipient_suppressed_means_no_data(relay: Relay) -> None:
    await relay.storage.suppressions.add(account_id=relay.account.id, address="a@example.net", reason="")

    def session() -> tuple[int, int]:
        with relay.smtp() as client:
            relay.login(client)
            client.mail("app@example.com")
            code, _ = client.rcpt("a@example.net")
            try:
                client.data(BODY)
            except smtplib.SMTPDataError as exc:
                return code, exc.smtp_code
            return code, 250

    assert await in_thread(session) == (550, 503)
    assert await relay.storage.messages.list(account_id=relay.account.id) == []
