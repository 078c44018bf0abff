"""Byte-level cases over real sockets: pipelining, smuggling, STARTTLS injection, limits."""

from __future__ import annotations

import pytest

from .conftest import PASSWORD, Relay, in_thread
from .rawclient import RawClient

HEADERS = b"From: app@example.com\r\nSubject: t\r\n\r\n"


def _client(relay: Relay) -> RawClient:
    client = RawClient(relay.port)
    client.login(relay.client_context, relay.account.email, PASSWORD)
    return client


async def test_pipelined_transaction_replies_in_order(relay: Relay) -> None:
    def session() -> list[int]:
        with _client(relay) as c:
            c.send(b"MAIL FROM:<app@example.com>\r\nRCPT TO:<a@example.net>\r\n"
                   b"RCPT TO:<b@example.net>\r\nDATA\r\n")
            codes = [c.reply()[0] for _ in range(4)]
            c.send(HEADERS + b"body\r\n.\r\nNOOP\r\nQUIT\r\n")
            codes += [c.reply()[0] for _ in range(3)]
            return codes

    assert await in_thread(session) == [250, 250, 250, 354, 250, 250, 221]
    assert len(await relay.storage.messages.list()) == 1


SMUGGLING = {
    "lf-dot-lf": b"\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
    "cr-dot-cr": b"\r.\r",
    "crlf-dot-crcrlf": b"\r\n.\r\r\n",
}


@pytest.mark.parametrize("ending", list(SMUGGLING.values()), ids=list(SMUGGLING))
async def test_smuggled_end_of_data_never_enqueues_a_second_message(relay: Relay, ending: bytes) -> None:
    smuggled = (b"MAIL FROM:<app@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n"
                b"From: app@example.com\r\n\r\nsmuggled\r\n")

    def session() -> tuple[int, list[str]]:
        with _client(relay) as c:
            assert c.command(b"MAIL FROM:<app@example.com>")[0] == 250
            assert c.command(b"RCPT TO:<a@example.net>")[0] == 250
            assert c.command(b"DATA")[0] == 354
            c.send(HEADERS + b"first" + ending + smuggled + b"\r\n.\r\n")
            result = c.reply()
            # The session is in sync: the next command gets its own reply.
            assert c.command(b"NOOP")[0] == 250
            return result

    code, text = await in_thread(session)
    assert code == 550 and text[0].startswith("5.5.2")
    assert await relay.storage.messages.list() == []


async def test_starttls_plaintext_injection_is_discarded(relay: Relay) -> None:
    def session() -> tuple[int, int]:
        with RawClient(relay.port) as c:
            c.reply()
            c.command(b"EHLO client.test")
            # The injected command rides in the same packet as STARTTLS.
            c.send(b"STARTTLS\r\nMAIL FROM:<app@example.com>\r\n")
            assert c.reply()[0] == 220
            c.start_tls(relay.client_context)
            # Had the injected MAIL been kept, its reply would come now; instead the
            # session was reset and wants EHLO first.
            first = c.command(b"NOOP")[0]
            mail = c.command(b"MAIL FROM:<app@example.com>")[0]
            return first, mail

    noop, mail = await in_thread(session)
    assert noop == 250
    assert mail == 503


async def test_command_garbage_gets_5xx_and_server_survives(relay: Relay) -> None:
    def session() -> list[int]:
        with RawClient(relay.port) as c:
            c.reply()
            codes = [c.command(b"EHLO client.test")[0]]
            codes.append(c.command(b"XYZZY")[0])
            codes.append(c.command(b"MAIL FROM:<a@b\x00c>")[0])
            codes.append(c.command(b"\xff\xfe\xfd")[0])
            codes.append(c.command(b"A" * 600)[0])
            codes.append(c.command(b"NOOP")[0])
            return codes

    codes = await in_thread(session)
    assert codes[0] == 250 and codes[-1] == 250
    assert all(500 <= c < 600 for c in codes[1:-1]), codes


@pytest.mark.parametrize("smtp_env", [{"RELAY_SMTP__MAX_CONNECTIONS": "2"}])
async def test_connection_limit_answers_421(relay: Relay, smtp_env: dict[str, str]) -> None:
    held = [RawClient(relay.port), RawClient(relay.port)]
    try:
        for c in held:
            assert (await in_thread(c.reply))[0] == 220

        def third() -> tuple[tuple[int, list[str]], bool]:
            with RawClient(relay.port) as c:
                return c.reply(), c.closed_by_peer()

        (code, text), closed = await in_thread(third)
        assert code == 421 and text[0].startswith("4.7.0") and closed
    finally:
        for c in held:
            c.close()


@pytest.mark.parametrize(
    "smtp_env", [{"RELAY_SMTP__IP_CONNECTION_RATE": "3", "RELAY_SMTP__TRUSTED_NETWORKS": "[]"}]
)
async def test_per_ip_connection_rate_limit(relay: Relay, smtp_env: dict[str, str]) -> None:
    def connect() -> int:
        with RawClient(relay.port) as c:
            return c.reply()[0]

    codes = [await in_thread(connect) for _ in range(4)]
    assert codes == [220, 220, 220, 421]


@pytest.mark.parametrize(
    "smtp_env", [{"RELAY_SMTP__IP_CONNECTION_RATE": "1"}]
)
async def test_trusted_networks_are_exempt_from_the_rate_limit(relay: Relay, smtp_env: dict[str, str]) -> None:
    def connect() -> int:
        with RawClient(relay.port) as c:
            return c.reply()[0]

    assert [await in_thread(connect) for _ in range(3)] == [220, 220, 220]


@pytest.mark.parametrize(
    "smtp_env", [{"RELAY_SMTP__AUTH_FAILURE_LIMIT": "2"}]
)
async def test_repeated_auth_failures_block_the_ip(relay: Relay, smtp_env: dict[str, str]) -> None:
    import base64

    bad = b"AUTH PLAIN " + base64.b64encode(b"\0app@example.com\0nope")

    def session() -> list[int]:
        with RawClient(relay.port) as c:
            c.reply()
            c.command(b"EHLO client.test")
            c.command(b"STARTTLS")
            c.start_tls(relay.client_context)
            c.command(b"EHLO client.test")
            return [c.command(bad)[0] for _ in range(3)]

    assert await in_thread(session) == [535, 535, 421]

    def later() -> int:
        with RawClient(relay.port) as c:
            c.reply()
            c.command(b"EHLO client.test")
            c.command(b"STARTTLS")
            c.start_tls(relay.client_context)
            c.command(b"EHLO client.test")
            return c.command(b"AUTH PLAIN " + base64.b64encode(f"\0app@example.com\0{PASSWORD}".encode()))[0]

    assert await in_thread(later) == 421


@pytest.mark.parametrize("smtp_env", [{"RELAY_SMTP__MAX_RECIPIENTS": "2"}])
async def test_too_many_recipients(relay: Relay, smtp_env: dict[str, str]) -> None:
    def session() -> list[int]:
        with _client(relay) as c:
            c.command(b"MAIL FROM:<app@example.com>")
            return [c.command(b"RCPT TO:<r%d@example.net>" % i)[0] for i in range(3)]

    assert await in_thread(session) == [250, 250, 452]


@pytest.mark.parametrize("smtp_env", [{"RELAY_SMTP__MAX_MESSAGE_SIZE": "1000"}])
async def test_oversize_message_552_after_data_and_session_in_sync(relay: Relay, smtp_env: dict[str, str]) -> None:
    def session() -> tuple[int, int, int]:
        with _client(relay) as c:
            declared = c.command(b"MAIL FROM:<app@example.com> SIZE=5000")[0]
            c.command(b"MAIL FROM:<app@example.com>")
            c.command(b"RCPT TO:<a@example.net>")
            c.command(b"DATA")
            c.send(HEADERS + (b"x" * 70 + b"\r\n") * 30 + b".\r\n")
            end = c.reply()[0]
            return declared, end, c.command(b"NOOP")[0]

    assert await in_thread(session) == (552, 552, 250)
    assert await relay.storage.messages.list() == []


@pytest.mark.parametrize("smtp_env", [{"RELAY_SMTP__MEMORY_BUDGET": "200000"}])
async def test_memory_budget_refuses_a_declared_size_before_its_data(relay: Relay, smtp_env: dict[str, str]) -> None:
    """SIZE=150000 needs two copies (300,000) of a 200,000 budget: 452 at DATA, so the
    client never sends the body; a small message afterwards still fits."""
    def session() -> list[tuple[int, list[str]]]:
        with _client(relay) as c:
            replies = [c.command(b"MAIL FROM:<app@example.com> SIZE=150000"),
                       c.command(b"RCPT TO:<a@example.net>"),
                       c.command(b"DATA"),
                       c.command(b"RSET")]
            replies.append(_send_message(c, HEADERS + b"small\r\n"))
            return replies

    mail, rcpt, data, rset, small = await in_thread(session)
    assert (mail[0], rcpt[0]) == (250, 250)
    assert data[0] == 452 and data[1][0].startswith("4.3.1")
    assert rset[0] == 250 and small[0] == 250


@pytest.mark.parametrize("smtp_env", [{"RELAY_SMTP__MEMORY_BUDGET": "200000"}])
async def test_memory_budget_exhausted_mid_message_gives_452_after_data(relay: Relay, smtp_env: dict[str, str]) -> None:
    """Without SIZE the reservation grows with the body; past the budget the rest is
    read and dropped, 452 comes after the end of data and the session stays in sync."""
    def session() -> tuple[tuple[int, list[str]], tuple[int, list[str]]]:
        with _client(relay) as c:
            big = HEADERS + (b"y" * 98 + b"\r\n") * 1200  # 120,000 octets: 240,000 reserved
            return _send_message(c, big), c.command(b"NOOP")

    (code, text), noop = await in_thread(session)
    assert code == 452 and text[0].startswith("4.3.1")
    assert noop[0] == 250
    assert await relay.storage.messages.list() == []


def _send_message(c: RawClient, body: bytes) -> tuple[int, list[str]]:
    assert c.command(b"MAIL FROM:<app@example.com>")[0] == 250
    assert c.command(b"RCPT TO:<a@example.net>")[0] == 250
    assert c.command(b"DATA")[0] == 354
    c.send(body + b".\r\n")
    return c.reply()


async def test_account_message_rate_limit(relay: Relay) -> None:
    await relay.storage.accounts.update(relay.account.id, messages_per_minute=1, recipients_per_hour=3)

    def session() -> list[int]:
        with _client(relay) as c:
            codes = [c.command(b"MAIL FROM:<app@example.com>")[0]]
            codes += [c.command(b"RCPT TO:<r%d@example.net>" % i)[0] for i in range(4)]
            c.command(b"DATA")
            c.send(HEADERS + b"x\r\n.\r\n")
            codes.append(c.reply()[0])
            codes.append(c.command(b"MAIL FROM:<app@example.com>")[0])
            return codes

    assert await in_thread(session) == [250, 250, 250, 250, 450, 250, 450]


async def test_database_unreachable_gives_451_and_nothing_half_stored(relay: Relay, database_url: str, pg_server_url: str) -> None:
    import psycopg2

    def session_until_data(c: RawClient) -> None:
        c.command(b"MAIL FROM:<app@example.com>")
        c.command(b"RCPT TO:<a@example.net>")
        assert c.command(b"DATA")[0] == 354

    client = await in_thread(lambda: _client(relay))
    try:
        await in_thread(lambda: session_until_data(client))
        from urllib.parse import urlsplit

        name = urlsplit(database_url).path.lstrip("/")
        conn = psycopg2.connect(pg_server_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            client.send(HEADERS + b"x\r\n.\r\n")
            code, text = await in_thread(client.reply)
        finally:
            with conn.cursor() as cur:
                cur.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
            conn.close()
        assert code == 451 and text[0].startswith("4.3.0")
        # The session survives; once the database is back, the same client can retry.
        assert (await in_thread(lambda: client.command(b"NOOP")))[0] == 250
    finally:
        client.close()
    assert await relay.storage.messages.list() == []


LONG_LINE = b"<p>" + b"w" * 1997 + b"</p>\r\n"  # 2,007 octets, as HTML generators write


async def test_long_lines_are_accepted_and_stored_as_received_by_default(relay: Relay) -> None:
    def session() -> tuple[int, list[str]]:
        with _client(relay) as c:
            return _send_message(c, HEADERS + LONG_LINE + b"short\r\n")

    code, text = await in_thread(session)
    assert code == 250, (code, text)
    [stored] = await relay.storage.messages.list()
    message = await relay.storage.messages.get(stored.id, with_raw=True)
    assert message is not None and message.raw.endswith(b"\r\n\r\n" + LONG_LINE + b"short\r\n")


@pytest.mark.parametrize("smtp_env", [{"RELAY_SMTP__LONG_LINE_POLICY": "reject"}])
async def test_long_line_policy_reject_refuses_with_500_5_5_6(relay: Relay, smtp_env: dict[str, str]) -> None:
    def session() -> tuple[tuple[int, list[str]], tuple[int, list[str]]]:
        with _client(relay) as c:
            return _send_message(c, HEADERS + LONG_LINE), c.command(b"NOOP")

    (code, text), noop = await in_thread(session)
    assert code == 500 and text[0].startswith("5.5.6")
    assert noop[0] == 250
    assert await relay.storage.messages.list() == []
