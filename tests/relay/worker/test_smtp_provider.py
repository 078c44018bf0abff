"""The smtp provider against a real aiosmtpd upstream (STARTTLS via trustme, AUTH).

What must hold: the upstream receives exactly the queued bytes and exactly the
envelope recipients; each recipient gets its own verdict; 4xx is temporary, 5xx
permanent, an unusable upstream (refused AUTH, bad certificate, nothing listening) is
temporary and unreachable; sessions are reused, and a dead reused one is replaced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme

from relay.models import ProviderType
from relay.worker import providers
from relay.worker.providers import Verdict
from relay.worker.providers.base import ProviderConfigError
from relay.worker.providers.smtp import Smtp

from .helpers import RAW, RCPT, envelope, provider
from .upstream import PASSWORD, USER, aiosmtpd_upstream, free_port, sink

ca_fixture = pytest.fixture(scope="module")


@ca_fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
async def context() -> AsyncIterator[providers.Context]:
    async with httpx.AsyncClient() as http:
        ctx = providers.Context(http=http, connect_timeout=5, send_timeout=5, hostname="relay.test")
        try:
            yield ctx
        finally:
            with trio.CancelScope(shield=True):
                await ctx.smtp_pool.aclose()


def smtp(port: int, ca_file: str | None, **config: Any) -> Any:
    base: dict[str, Any] = {"host": "127.0.0.1", "port": port, "tls": "starttls", "username": USER,
                            "password": PASSWORD}
    if ca_file is not None:
        base["ca_file"] = ca_file
    return provider(ProviderType.SMTP, {**base, **config}, name="upstream")


async def test_starttls_auth_delivers_the_queued_bytes_to_every_envelope_recipient(
    ca: trustme.CA, ca_file: str, context: providers.Context
) -> None:
    async with aiosmtpd_upstream(ca) as up:
        driver = providers.build(smtp(up.port, ca_file), context)
        result = await driver.deliver(envelope())
    assert result.verdict is Verdict.DELIVERED, result
    assert result.recipients_with(Verdict.DELIVERED) == RCPT
    assert result.response == "250 2.0.0 OK queued"
    [got] = up.messages
    assert got.content == RAW  # the Received: header included, byte for byte
    assert got.rcpt_tos == RCPT  # Bcc's dave@ included; nobody@ from To: never added
    assert got.mail_from == "bounces@example.com"
    assert up.auth_failures == 0


async def test_dots_and_long_messages_arrive_unchanged(
    ca: trustme.CA, ca_file: str, context: providers.Context
) -> None:
    raw = RAW + b".\r\n..two dots\r\n.\r\nafter a lone dot\r\n" + b"x" * 998 + b"\r\n" * 1 + b"y\r\n" * 20000
    async with aiosmtpd_upstream(ca) as up:
        result = await providers.build(smtp(up.port, ca_file), context).deliver(envelope(raw))
    assert result.verdict is Verdict.DELIVERED
    assert up.messages[0].content == raw


async def test_lines_over_998_octets_are_split_on_delivery(
    ca: trustme.CA, ca_file: str, context: providers.Context
) -> None:
    """smtp.long_line_policy "split" stored them as received; the wire gets no line over
    998 octets (RFC 5322 2.1.1), broken with CRLF as Postfix does, nothing else changed."""
    long_line = b"<p>" + b"w" * 2500 + b"</p>"
    raw = RAW + long_line + b"\r\n." + b"d" * 1200 + b"\r\nend\r\n"
    async with aiosmtpd_upstream(ca) as up:
        result = await providers.build(smtp(up.port, ca_file), context).deliver(envelope(raw))
    assert result.verdict is Verdict.DELIVERED, result
    got = up.messages[0].content
    assert max(len(line) for line in got.split(b"\r\n")) == 998
    assert got.replace(b"\r\n", b"") == raw.replace(b"\r\n", b"")
    assert got.startswith(RAW) and got.endswith(b"\r\nend\r\n")


async def test_partial_refusal_gives_per_recipient_verdicts(
    ca: trustme.CA, ca_file: str, context: providers.Context
) -> None:
    refuse = {"carol@example.org": "550 5.1.1 no such user", "dave@example.com": "450 4.2.1 mailbox busy"}
    async with aiosmtpd_upstream(ca, refuse=refuse) as up:
        result = await providers.build(smtp(up.port, ca_file), context).deliver(envelope())
    assert result.verdict is Verdict.DELIVERED
    by = {r.recipient: (r.verdict, r.response) for r in result.recipients}
    assert by == {
        "bob@example.net": (Verdict.DELIVERED, "250 2.0.0 OK queued"),
        "carol@example.org": (Verdict.PERMANENT, "550 5.1.1 no such user"),
        "dave@example.com": (Verdict.TEMPORARY, "450 4.2.1 mailbox busy"),
    }
    assert up.messages[0].rcpt_tos == ("bob@example.net",)


async def test_every_recipient_refused_sends_no_data(
    ca: trustme.CA, ca_file: str, context: providers.Context
) -> None:
    refuse = {r: "550 5.1.1 no such user" for r in RCPT[1:]} | {RCPT[0]: "451 4.3.0 try later"}
    async with aiosmtpd_upstream(ca, refuse=refuse) as up:
        driver = providers.build(smtp(up.port, ca_file), context)
        result = await driver.deliver(envelope())
        assert result.verdict is Verdict.TEMPORARY  # one of them may be retried
        assert result.recipients_with(Verdict.PERMANENT) == RCPT[1:]
        assert up.messages == []
        up.refuse.clear()  # the session was left clean: the next message goes through on it
        assert (await driver.deliver(envelope())).verdict is Verdict.DELIVERED
    assert up.connections == 1


@pytest.mark.parametrize(("reply", "expected"), [
    ("451 4.3.0 queue full", Verdict.TEMPORARY),
    ("554 5.6.0 message refused: content", Verdict.PERMANENT),
])
async def test_refusal_at_end_of_data(
    ca: trustme.CA, ca_file: str, context: providers.Context, reply: str, expected: Verdict
) -> None:
    async with aiosmtpd_upstream(ca, data_reply=reply) as up:
        result = await providers.build(smtp(up.port, ca_file), context).deliver(envelope())
    assert result.verdict is expected and not result.unreachable
    assert {r.verdict for r in result.recipients} == {expected}
    assert result.response == reply


async def test_refused_auth_is_temporary_and_unreachable(
    ca: trustme.CA, ca_file: str, context: providers.Context
) -> None:
    async with aiosmtpd_upstream(ca) as up:
        driver = providers.build(smtp(up.port, ca_file, password="wrong"), context)
        result = await driver.deliver(envelope())
    assert result.verdict is Verdict.TEMPORARY and result.unreachable
    assert "refused AUTH PLAIN" in result.response and "535" in result.response
    assert "wrong" not in result.response and "wrong" not in repr(driver)
    assert up.auth_failures == 1 and up.messages == []


async def test_untrusted_certificate_fails_unless_verify_is_off(
    context: providers.Context, tmp_path: Path
) -> None:
    other = trustme.CA()  # the upstream's certificate comes from a CA we do not trust
    async with aiosmtpd_upstream(other) as up:
        refused = await providers.build(smtp(up.port, None), context).deliver(envelope())
        assert refused.verdict is Verdict.TEMPORARY and refused.unreachable
        assert "certificate verification failed" in refused.response
        assert up.messages == [] and up.auth_failures == 0  # credentials never left
        accepted = await providers.build(smtp(up.port, None, verify=False), context).deliver(envelope())
    assert accepted.verdict is Verdict.DELIVERED
    assert up.messages[0].content == RAW


async def test_implicit_tls(ca: trustme.CA, ca_file: str, context: providers.Context) -> None:
    async with aiosmtpd_upstream(ca, tls="implicit", auth=False) as up:
        config = smtp(up.port, ca_file, tls="implicit", username=None, password=None)
        result = await providers.build(config, context).deliver(envelope())
    assert result.verdict is Verdict.DELIVERED
    assert up.messages[0].content == RAW and up.messages[0].rcpt_tos == RCPT


async def test_starttls_required_when_not_offered(ca: trustme.CA, context: providers.Context) -> None:
    async with aiosmtpd_upstream(ca, tls="none", auth=False) as up:
        refused = await providers.build(smtp(up.port, None, username=None, password=None), context).deliver(envelope())
        assert refused.unreachable and "does not offer STARTTLS" in refused.response
        plain = smtp(up.port, None, tls="none", username=None, password=None)
        assert (await providers.build(plain, context).deliver(envelope())).verdict is Verdict.DELIVERED
    assert [m.content for m in up.messages] == [RAW]


async def test_nothing_listening_is_unreachable(context: providers.Context) -> None:
    result = await providers.build(smtp(free_port(), None), context).deliver(envelope())
    assert result.verdict is Verdict.TEMPORARY and result.unreachable
    assert "cannot connect to 127.0.0.1" in result.response


async def test_silent_upstream_times_out(nursery: trio.Nursery) -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    import functools

    [listener] = await nursery.start(functools.partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
    port = listener.socket.getsockname()[1]
    async with httpx.AsyncClient() as http:
        ctx = providers.Context(http=http, connect_timeout=0.3, send_timeout=0.3)
        result = await providers.build(smtp(port, None), ctx).deliver(envelope())
    assert result.unreachable and "within 0.3s (worker.connect_timeout)" in result.response


async def test_consecutive_messages_reuse_one_session(
    ca: trustme.CA, ca_file: str, context: providers.Context
) -> None:
    async with aiosmtpd_upstream(ca) as up:
        driver = providers.build(smtp(up.port, ca_file), context)
        for n in range(3):
            result = await driver.deliver(envelope(RAW + b"n%d\r\n" % n))
            assert result.verdict is Verdict.DELIVERED
        assert up.connections == 1
        assert context.smtp_pool.statistics().reused == 2
        await driver.aclose()  # closes the parked session (worker shutdown)
        assert context.smtp_pool.statistics().idle == 0
    assert [m.content for m in up.messages] == [RAW + b"n%d\r\n" % n for n in range(3)]


async def test_a_dead_reused_session_is_replaced_once(
    ca: trustme.CA, ca_file: str, context: providers.Context
) -> None:
    async with aiosmtpd_upstream(ca) as up:
        driver = providers.build(smtp(up.port, ca_file), context)
        assert (await driver.deliver(envelope())).verdict is Verdict.DELIVERED
        await up.drop_connections()  # the upstream restarted under the parked session
        result = await driver.deliver(envelope())
        assert result.verdict is Verdict.DELIVERED, result
        assert up.connections == 2
    assert len(up.messages) == 2


async def test_idle_sessions_are_closed_after_the_idle_timeout(
    ca: trustme.CA, ca_file: str, nursery: trio.Nursery
) -> None:
    async with httpx.AsyncClient() as http:
        ctx = providers.Context(http=http, connect_timeout=5, send_timeout=5,
                                smtp_pool=providers.SmtpPool(idle_timeout=0.2))
        nursery.start_soon(ctx.smtp_pool.run)
        async with aiosmtpd_upstream(ca) as up:
            driver = providers.build(smtp(up.port, ca_file), ctx)
            assert (await driver.deliver(envelope())).verdict is Verdict.DELIVERED
            assert ctx.smtp_pool.statistics().idle == 1
            with trio.fail_after(5):
                while ctx.smtp_pool.statistics().idle:
                    await trio.sleep(0.05)
            assert ctx.smtp_pool.statistics().expired == 1
            assert (await driver.deliver(envelope())).verdict is Verdict.DELIVERED
            assert up.connections == 2
        await ctx.smtp_pool.aclose()


async def test_bdat_and_pipelining_when_offered(nursery: trio.Nursery) -> None:
    up = await sink(nursery)
    async with httpx.AsyncClient() as http:
        ctx = providers.Context(http=http, connect_timeout=5, send_timeout=5)
        config = smtp(up.port, None, tls="none", username=None, password=None)
        driver = providers.build(config, ctx)
        raw = RAW + b".leading dot\r\n"
        for _ in range(2):
            result = await driver.deliver(envelope(raw))
            assert result.verdict is Verdict.DELIVERED, result
        await ctx.smtp_pool.aclose()
    assert [(m.content, m.rcpt_tos, m.mail_options) for m in up.messages] == [(raw, RCPT, ("BDAT",))] * 2
    assert up.connections == 1
    # the second message: RSET, then MAIL and the RCPTs pipelined, then BDAT
    assert up.commands[-7:] == ["Rset", "MailFrom", "RcptTo", "RcptTo", "RcptTo", "EndOfData", "Quit"]


@pytest.mark.parametrize(("config", "words"), [
    ({"host": ""}, "config.host is required"),
    ({"tls": "ssl"}, "config.tls must be one of"),
    ({"port": 70000}, "config.port"),
    ({"verify": "no"}, "config.verify"),
    ({"password": None}, "go together"),
    ({"ca_file": "/nonexistent.pem"}, "config.ca_file"),
])
def test_unusable_config_names_the_key(config: dict[str, Any], words: str) -> None:
    settings = provider(ProviderType.SMTP, {"host": "127.0.0.1", "username": USER, "password": PASSWORD, **config})
    with pytest.raises(ProviderConfigError, match=words):
        Smtp(settings, providers.Context(http=None, connect_timeout=1, send_timeout=1))  # type: ignore[arg-type]


def test_password_is_never_shown() -> None:
    driver = Smtp(smtp(25, None), providers.Context(http=None, connect_timeout=1, send_timeout=1))  # type: ignore[arg-type]
    assert PASSWORD not in repr(driver) and PASSWORD not in repr(driver._settings)

