"""End to end with smtplib over real sockets and real TLS: what a client sees."""

from __future__ import annotations

import smtplib

import pytest

from relay.models import MessageStatus

from .conftest import PASSWORD, Relay, create_account, in_thread

MESSAGE = b"From: App <app@example.com>\r\nTo: a@example.net\r\nSubject: hi\r\n\r\nHello.\r\n"


def _queue_id(reply: bytes) -> str:
    return reply.decode().rsplit(" ", 1)[-1]


async def test_starttls_auth_and_enqueue(relay: Relay) -> None:
    def session() -> tuple[int, bytes]:
        with relay.smtp() as client:
            relay.login(client)
            client.mail("app@example.com")
            client.rcpt("a@example.net")
            client.rcpt("hidden-bcc@example.org")
            return client.data(MESSAGE)

    code, text = await in_thread(session)
    assert code == 250 and b"queued as" in text
    stored = await relay.storage.messages.get(__import__("uuid").UUID(_queue_id(text)), with_raw=True)
    assert stored is not None and stored.status is MessageStatus.QUEUED
    assert stored.rcpt_to == ("a@example.net", "hidden-bcc@example.org")
    assert stored.mail_from == "app@example.com"
    assert stored.tls is True and stored.client_ip == "127.0.0.1"
    assert stored.account_id == relay.account.id
    assert stored.raw.startswith(b"Received: from client.test ([127.0.0.1])")
    assert b"with ESMTPSA" in stored.raw and b"hidden-bcc" not in stored.raw
    assert stored.raw.endswith(b"\r\n\r\nHello.\r\n")
    assert b"\r\nMessage-ID: <" in stored.raw and b"\r\nDate: " in stored.raw
    assert stored.message_id and stored.message_id.startswith("<")


async def test_ehlo_advertises_size_and_auth_only_after_tls(relay: Relay) -> None:
    def session() -> tuple[dict[str, str], dict[str, str]]:
        with relay.smtp() as client:
            client.ehlo()
            before = dict(client.esmtp_features)
            client.starttls(context=relay.client_context)
            client.ehlo()
            return before, dict(client.esmtp_features)

    before, after = await in_thread(session)
    assert "starttls" in before and "starttls" not in after
    assert after["size"].strip() == str(25 * 1024 * 1024)
    assert "PLAIN" in after["auth"] and "LOGIN" in after["auth"]


async def test_auth_before_tls_is_refused(relay: Relay) -> None:
    def session() -> tuple[int, bytes]:
        with relay.smtp() as client:
            client.ehlo()
            return client.docmd("AUTH", "PLAIN AGFwcEBleGFtcGxlLmNvbQBwYXNz")

    code, text = await in_thread(session)
    assert code == 538 and text.startswith(b"5.7.11")


@pytest.mark.parametrize("smtp_env", [{"RELAY_SMTP__AUTH_REQUIRE_TLS": "false"}])
async def test_starttls_forgets_a_plaintext_auth(relay: Relay, smtp_env: dict[str, str]) -> None:
    """RFC 3207 4.2: the policy's account holds only while proto's session still
    names the login, and proto forgets it when TLS starts."""
    def session() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        with relay.smtp() as client:
            client.ehlo()
            client.login(relay.account.email, PASSWORD)
            before = client.mail("app@example.com")
            client.rset()
            client.starttls(context=relay.client_context)
            client.ehlo()
            return before, client.mail("app@example.com")

    before, after = await in_thread(session)
    assert before[0] == 250
    assert after[0] == 530 and after[1].startswith(b"5.7.0")


async def test_mail_without_auth_is_refused_no_open_relay(relay: Relay) -> None:
    def session() -> tuple[int, bytes]:
        with relay.smtp() as client:
            client.ehlo()
            client.starttls(context=relay.client_context)
            client.ehlo()
            return client.mail("app@example.com")

    code, text = await in_thread(session)
    assert code == 530 and text.startswith(b"5.7.0")


@pytest.mark.parametrize(
    "user, password",
    [
        ("app@example.com", "wrong password"),
        ("nobody@example.com", PASSWORD),
        ("app@example.com", "x" * 100),
    ],
    ids=["wrong-password", "unknown-user", "over-72-bytes"],
)
async def test_failed_logins_get_535_and_keep_the_session(relay: Relay, user: str, password: str) -> None:
    def session() -> tuple[str, tuple[int, bytes]]:
        with relay.smtp() as client:
            try:
                relay.login(client, password=password, user=user)
                outcome = "accepted"
            except smtplib.SMTPAuthenticationError as exc:
                outcome = f"{exc.smtp_code} {exc.smtp_error[:5].decode()}"
            # The session survives: a right login still works.
            return outcome, client.login(relay.account.email, PASSWORD)

    outcome, after = await in_thread(session)
    assert outcome == "535 5.7.8"
    assert after[0] == 235


async def test_login_is_case_insensitive_and_uses_login_mechanism(relay: Relay) -> None:
    def session() -> tuple[int, bytes]:
        with relay.smtp() as client:
            client.ehlo()
            client.starttls(context=relay.client_context)
            client.ehlo()
            client.user, client.password = "APP@Example.com", PASSWORD
            return client.auth("LOGIN", client.auth_login)

    code, _ = await in_thread(session)
    assert code == 235


async def test_damaged_hash_and_disabled_account_get_535(relay: Relay) -> None:
    await create_account(relay.storage, email="broken@example.com")
    broken = await relay.storage.accounts.get_by_email("broken@example.com")
    await relay.storage.accounts.update(broken.id, password_hash="not-a-bcrypt-hash")
    await create_account(relay.storage, email="off@example.com", disabled=True)

    def attempt(user: str) -> int:
        with relay.smtp() as client:
            try:
                relay.login(client, user=user)
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code
            return 235

    assert await in_thread(lambda: attempt("broken@example.com")) == 535
    assert await in_thread(lambda: attempt("off@example.com")) == 535


async def test_disabling_an_account_takes_effect_despite_the_cache(relay: Relay) -> None:
    def attempt() -> int:
        with relay.smtp() as client:
            try:
                relay.login(client)
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code
            return 235

    assert await in_thread(attempt) == 235
    await relay.storage.accounts.update(relay.account.id, disabled=True)
    assert await in_thread(attempt) == 535


async def test_plain_with_other_authorization_identity_is_refused(relay: Relay) -> None:
    import base64

    blob = base64.b64encode(b"boss@example.com\0app@example.com\0" + PASSWORD.encode()).decode()

    def session() -> tuple[int, bytes]:
        with relay.smtp() as client:
            client.ehlo()
            client.starttls(context=relay.client_context)
            client.ehlo()
            return client.docmd("AUTH", "PLAIN " + blob)

    code, text = await in_thread(session)
    assert code == 535 and text.startswith(b"5.7.8")


async def test_sender_domain_policy(relay: Relay) -> None:
    await relay.storage.accounts.update(relay.account.id, allowed_domains=["example.com", "*.corp.example"])

    def session() -> list[int]:
        with relay.smtp() as client:
            relay.login(client)
            codes = []
            for sender in ["x@example.com", "x@mail.corp.example", "x@corp.example", "x@evil.example", "x@sub.example.com"]:
                codes.append(client.mail(sender)[0])
                client.rset()
            return codes

    assert await in_thread(session) == [250, 250, 250, 553, 553]


async def test_from_header_domain_is_checked_at_end_of_data(relay: Relay) -> None:
    def session() -> tuple[int, bytes]:
        with relay.smtp() as client:
            relay.login(client)
            client.mail("app@example.com")
            client.rcpt("a@example.net")
            return client.data(b"From: ceo@evil.example\r\nSubject: x\r\n\r\nx\r\n")

    code, text = await in_thread(session)
    assert code == 550 and text.startswith(b"5.7.1")
    assert await relay.storage.messages.list() == []


async def test_many_messages_in_one_session(relay: Relay) -> None:
    def session() -> list[int]:
        with relay.smtp() as client:
            relay.login(client)
            return [client.sendmail("app@example.com", ["a@example.net"], MESSAGE) == {} and 250 for _ in range(5)]

    assert await in_thread(session) == [250] * 5
    assert len(await relay.storage.messages.list()) == 5


@pytest.mark.parametrize("smtp_env", [{"RELAY_SMTP__IMPLICIT_TLS_LISTEN": "127.0.0.1:0"}])
async def test_implicit_tls_listener(relay: Relay, smtp_env: dict[str, str]) -> None:
    port = relay.started.smtp.implicit_tls_ports[0]

    def session() -> tuple[dict[str, str], tuple[int, bytes]]:
        with smtplib.SMTP_SSL("127.0.0.1", port, context=relay.client_context, timeout=10) as client:
            client.ehlo("client.test")
            features = dict(client.esmtp_features)
            client.login(relay.account.email, PASSWORD)
            client.mail("app@example.com")
            client.rcpt("a@example.net")
            return features, client.data(MESSAGE)

    features, (code, _) = await in_thread(session)
    assert "starttls" not in features and "auth" in features
    assert code == 250
    [stored] = await relay.storage.messages.list()
    assert stored.tls is True


async def test_bdat_chunks_are_stored_as_one_message(relay: Relay) -> None:
    from .rawclient import RawClient

    def session() -> list[int]:
        with RawClient(relay.port) as c:
            c.login(relay.client_context, relay.account.email, PASSWORD)
            codes = [c.command(b"MAIL FROM:<app@example.com>")[0], c.command(b"RCPT TO:<a@example.net>")[0]]
            first = b"From: app@example.com\r\nSubject: bdat\r\n\r\n"
            second = b"line one\r\n.line two starts with a dot\r\n"
            c.send(b"BDAT %d\r\n" % len(first) + first)
            codes.append(c.reply()[0])
            c.send(b"BDAT %d LAST\r\n" % len(second) + second)
            codes.append(c.reply()[0])
            return codes

    assert await in_thread(session) == [250, 250, 250, 250]
    [listed] = await relay.storage.messages.list()
    stored = await relay.storage.messages.get(listed.id, with_raw=True)
    # BDAT content is not dot-stuffed: a leading dot stays as sent.
    assert stored.raw.endswith(b"\r\n\r\nline one\r\n.line two starts with a dot\r\n")
