"""What the SMTP service logs: one line per session start/end and per message, never a secret."""

from __future__ import annotations

import base64
import smtplib

import structlog

from .conftest import PASSWORD, Relay, in_thread


async def test_log_lines_carry_context_and_never_a_password_or_auth_blob(relay: Relay) -> None:
    wrong = "not-the-password-9431"

    def session() -> None:
        with relay.smtp() as client:
            client.ehlo()
            client.starttls(context=relay.client_context)
            client.ehlo()
            try:
                client.login(relay.account.email, wrong)
            except smtplib.SMTPAuthenticationError:
                pass
            client.login(relay.account.email, PASSWORD)
            client.sendmail("app@example.com", ["a@example.net"], b"From: app@example.com\r\n\r\nhi\r\n")
            client.sendmail("app@example.com", ["a@example.net"], b"From: x@evil.example\r\n\r\nhi\r\n")

    with structlog.testing.capture_logs() as logs:
        try:
            await in_thread(session)
        except smtplib.SMTPDataError:
            pass

    text = repr(logs)
    for secret in (PASSWORD, wrong, base64.b64encode(f"\0{relay.account.email}\0{PASSWORD}".encode()).decode()):
        assert secret not in text
    events = [entry["event"] for entry in logs]
    assert events.count("session start") == 1 and events.count("session end") == 1
    accepted = next(e for e in logs if e["event"] == "message accepted")
    assert accepted["account_id"] == str(relay.account.id) and accepted["queue_id"]
    assert any(e["event"] == "message refused" for e in logs)
    assert any(e["event"] == "auth failed" for e in logs)
