"""Which refusals are hard bounces (``RecipientResult.hard_bounce``): only answers about
the address — SMTP RCPT 5.1.x / 5.2.1 (or a bare 550/551/553), Postmark 406 and 300 —
never policy, content, MAIL/DATA or connection failures; and the HTTP APIs that report
bounces later (SendGrid, Mailgun, SES) mark none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
import trustme

import proto
from relay.models import ProviderType
from relay.worker import providers
from relay.worker.providers import Verdict
from relay.worker.providers.smtp import address_refused

from . import httpserver
from .helpers import envelope, provider
from .test_http_providers import deliver
from .upstream import PASSWORD, USER, aiosmtpd_upstream


@pytest.mark.parametrize(("code", "enhanced", "expected"), [
    (550, "5.1.1", True),    # unknown user
    (553, "5.1.3", True),    # bad address syntax
    (550, "5.1.10", True),   # null MX (RFC 7505)
    (550, "5.2.1", True),    # mailbox disabled
    (552, "5.2.2", False),   # mailbox full: the address is fine
    (550, "5.7.1", False),   # policy
    (554, "5.7.1", False),
    (550, None, True),
    (551, None, True),
    (553, None, True),
    (554, None, False),
    (452, "4.2.2", False),
    (450, None, False),
    (250, "2.1.5", False),
])
def test_address_refused(code: int, enhanced: str | None, expected: bool) -> None:
    assert address_refused(proto.Reply(code, "words", enhanced)) is expected


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def context() -> AsyncIterator[providers.Context]:
    async with httpx.AsyncClient() as http:
        ctx = providers.Context(http=http, connect_timeout=5, send_timeout=5, hostname="relay.test")
        try:
            yield ctx
        finally:
            with trio.CancelScope(shield=True):
                await ctx.smtp_pool.aclose()


async def test_smtp_rcpt_refusals_about_the_address_are_hard_bounces(
    ca: trustme.CA, tmp_path: Path, context: providers.Context
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    refuse = {
        "carol@example.org": "550 5.1.1 no such user",
        "dave@example.com": "550 5.7.1 relaying denied",
    }
    config = {"host": "127.0.0.1", "tls": "starttls", "username": USER, "password": PASSWORD,
              "ca_file": str(ca_file)}
    async with aiosmtpd_upstream(ca, refuse=refuse) as up:
        config["port"] = up.port
        result = await providers.build(provider(ProviderType.SMTP, config), context).deliver(envelope())
    by = {r.recipient: (r.verdict, r.hard_bounce) for r in result.recipients}
    assert by == {
        "bob@example.net": (Verdict.DELIVERED, False),
        "carol@example.org": (Verdict.PERMANENT, True),
        "dave@example.com": (Verdict.PERMANENT, False),
    }


async def test_smtp_refusal_of_the_data_is_no_hard_bounce(
    ca: trustme.CA, tmp_path: Path, context: providers.Context
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    config = {"host": "127.0.0.1", "tls": "starttls", "username": USER, "password": PASSWORD,
              "ca_file": str(ca_file)}
    async with aiosmtpd_upstream(ca, data_reply="550 5.1.1 sounds like an address, but it is the data") as up:
        config["port"] = up.port
        result = await providers.build(provider(ProviderType.SMTP, config), context).deliver(envelope())
    assert result.verdict is Verdict.PERMANENT
    assert not any(r.hard_bounce for r in result.recipients)


async def _post(type: ProviderType, answer: httpserver.Answer, rcpt: tuple[str, ...]) -> providers.Result:
    raw = b"From: a@example.com\r\nTo: " + rcpt[0].encode() + b"\r\nSubject: s\r\n\r\nbody\r\n"
    result, _ = await deliver(type, [answer], raw=raw, rcpt=rcpt)
    return result


RCPT = ("gone@example.net", "fine@example.org")


@pytest.mark.parametrize(("body", "bounced"), [
    ({"ErrorCode": 406, "Message": "You tried to send to recipient(s) that have been marked as"
      " inactive. Found inactive addresses: Gone@example.net. Inactive recipients are ones that"
      " have generated a hard bounce, a spam complaint, or a manual suppression."},
     {"gone@example.net"}),
    ({"ErrorCode": 406, "Message": "You tried to send to recipients that have all been marked as"
      " inactive."}, set(RCPT)),
    ({"ErrorCode": 300, "Message": "Invalid 'To' address: 'gone@example.net'."}, {"gone@example.net"}),
    ({"ErrorCode": 300, "Message": "Invalid 'From' address: 'a@example'."}, set()),
    ({"ErrorCode": 300, "Message": "Invalid 'To' address: 'agone@example.net'."}, set()),
    ({"ErrorCode": 412, "Message": "Your account is pending approval."}, set()),
])
async def test_postmark_inactive_and_invalid_recipients(body: dict[str, object], bounced: set[str]) -> None:
    result = await _post(ProviderType.POSTMARK, httpserver.Answer(422, body), RCPT)
    assert result.verdict is Verdict.PERMANENT
    assert {r.recipient for r in result.recipients if r.hard_bounce} == bounced


@pytest.mark.parametrize("type", [ProviderType.SENDGRID, ProviderType.MAILGUN, ProviderType.SES])
async def test_asynchronous_bounce_apis_mark_nothing(type: ProviderType) -> None:
    answer = httpserver.Answer(400, {"message": "gone@example.net is not a valid address",
                                     "errors": [{"message": "gone@example.net is invalid"}]})
    result = await _post(type, answer, RCPT)
    assert result.verdict is Verdict.PERMANENT
    assert not any(r.hard_bounce for r in result.recipients)
