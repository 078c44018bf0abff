"""The smtp provider against a real aiosmtpd upstream (STARTTLS via trustme, AUTH).

What must hold: the upstream receives exactly the queued bytes and exactly the
envelope recipients; each recipient gets its own verdict; 4xx is temporary, 5xx
permanent, an unusable upstream (refused AUTH, bad certificate, nothing listening) is
temporary and unreachable; sessions are reused, and a dead reused one is replaced.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
import trustme

from relay.models import ProviderType
from relay.worker import providers
from relay.worker.providers import Verdict
from relay.worker.providers.base import ProviderConfigError
from relay.worker.providers.smtp import PIPELINED_BDAT_MAX, Smtp

from .helpers import RAW, RCPT, envelope, provider
from .upstream import PASSWORD, USER, aiosmtpd_upstream, refusing_port, sink

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
    with refusing_port() as port:
        result = await providers.build(smtp(port, None), context).deliver(envelope())
    assert result.verdict is Verdict.TEMPORARY and result.unreachable
    assert "cannot connect to 127.0.0.1" in result.response


async def test_silent_upstream_times_out(nursery: trio.Nursery) -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    [listener] = await nursery.start(functools.partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
    port = listener.socket.getsockname()[1]
    async with httpx.AsyncClient() as http:
        ctx = providers.Context(http=http, connect_timeout=0.3, send_timeout=0.3)
        result = await providers.build(smtp(port, None), ctx).deliver(envelope())
    assert result.unreachable and "within 0.3s (worker.connect_timeout)" in result.response


@attrs.define(eq=False)
class Script:
    """A raw upstream offering PIPELINING (and CHUNKING when asked) that answers MAIL,
    each RCPT, DATA or BDAT and the end of data with ``replies`` in turn (250 once they
    run out). ``None`` is a reply that never comes: the upstream stops answering there."""

    replies: list[bytes | None]
    chunking: bool = False
    #: What the client sent after the upstream stopped answering, or after a 354.
    after: list[bytes] = attrs.Factory(list)
    sessions: int = 0

    def next_reply(self) -> bytes | None:
        return self.replies.pop(0) if self.replies else b"250 2.0.0 ok"

    async def serve(self, stream: trio.SocketStream) -> None:
        self.sessions += 1
        await stream.send_all(b"220 script.test ESMTP\r\n")
        buffer, stalled, in_data, bdat_left = b"", False, False, -1
        while data := await stream.receive_some(65536):
            buffer += data
            while buffer and not stalled:
                if bdat_left >= 0:  # the content of a BDAT, then its reply
                    take = min(bdat_left, len(buffer))
                    bdat_left, buffer = bdat_left - take, buffer[take:]
                    if bdat_left:
                        break
                    bdat_left, line = -1, b"<end of BDAT>"
                elif in_data:
                    if b"\r\n.\r\n" not in b"\r\n" + buffer:
                        break
                    _, _, buffer = (b"\r\n" + buffer).partition(b"\r\n.\r\n")
                    in_data, line = False, b"<end of data>"
                else:
                    line, sep, rest = buffer.partition(b"\r\n")
                    if not sep:
                        break
                    buffer = rest
                if line.startswith(b"EHLO"):
                    await stream.send_all(b"250-script.test\r\n" + (b"250-CHUNKING\r\n" if self.chunking else b"")
                                          + b"250 PIPELINING\r\n")
                    continue
                if line.startswith(b"QUIT"):
                    await stream.send_all(b"221 bye\r\n")
                    return
                if line.startswith(b"BDAT"):
                    bdat_left = int(line.split()[1])
                    continue
                reply = self.next_reply()
                if reply is None:
                    stalled = True
                    break
                in_data = reply.startswith(b"354")
                await stream.send_all(reply + b"\r\n")
            if stalled and buffer:
                self.after.append(buffer)
                buffer = b""


async def run_script(nursery: trio.Nursery, script: Script, send_timeout: float = 1.0) -> tuple[Any, int, int]:
    """One delivery of ``envelope()`` against ``script``: (result, port, sessions parked)."""
    [listener] = await nursery.start(functools.partial(trio.serve_tcp, script.serve, 0, host="127.0.0.1"))
    port = listener.socket.getsockname()[1]
    async with httpx.AsyncClient() as http:
        ctx = providers.Context(http=http, connect_timeout=5, send_timeout=send_timeout)
        driver = providers.build(smtp(port, None, tls="none", username=None, password=None), ctx)
        result = await driver.deliver(envelope())
        parked = ctx.smtp_pool.statistics().idle
        await ctx.smtp_pool.aclose()
    return result, port, parked


OK, REFUSED, GO = b"250 2.1.0 ok", b"550 5.1.1 no such user", b"354 go on"


async def test_an_upstream_that_never_answers_the_envelope_times_out(nursery: trio.Nursery) -> None:
    result, port, parked = await run_script(nursery, Script([None]))
    assert result.verdict is Verdict.TEMPORARY and not result.unreachable and parked == 0
    assert f"no reply from 127.0.0.1:{port} within 1s (MAIL/RCPT)" in result.response
    assert not any("may have been delivered" in r.response for r in result.recipients)


@pytest.mark.parametrize("chunking", [False, True])
async def test_an_upstream_that_never_answers_the_end_of_data_times_out(
    nursery: trio.Nursery, chunking: bool
) -> None:
    replies: list[bytes | None] = [OK, *[OK] * len(RCPT), *([] if chunking else [GO]), None]
    result, port, parked = await run_script(nursery, Script(replies, chunking=chunking))
    assert result.verdict is Verdict.TEMPORARY and parked == 0
    assert f"no reply from 127.0.0.1:{port} within 1s (message data)" in result.response
    assert all("may have been delivered" in r.response for r in result.recipients)


@pytest.mark.parametrize("chunking", [False, True])
async def test_a_refused_rcpt_stays_refused_when_the_end_never_comes(nursery: trio.Nursery, chunking: bool) -> None:
    """RCPT verdicts are known before the pipelined DATA's (or BDAT's) reply is awaited."""
    replies: list[bytes | None] = [OK, REFUSED, *[OK] * (len(RCPT) - 1), None]
    result, _, _ = await run_script(nursery, Script(replies, chunking=chunking))
    first, *others = result.recipients
    assert (first.recipient, first.verdict, first.hard_bounce) == (RCPT[0], Verdict.PERMANENT, True)
    assert all(r.verdict is Verdict.TEMPORARY and "(message data)" in r.response for r in others)
    # DATA was never answered 354, so no content went; a pipelined BDAT did
    assert all(("may have been delivered" in r.response) is chunking for r in others)


@pytest.mark.parametrize("chunking", [False, True])
async def test_a_refused_mail_with_pipelined_data_keeps_the_session(nursery: trio.Nursery, chunking: bool) -> None:
    script = Script([b"550 5.7.1 sender refused", *[b"503 5.5.1 no MAIL"] * len(RCPT),
                     b"554 5.5.1 no valid recipients"], chunking=chunking)
    result, _, parked = await run_script(nursery, script)
    assert result.verdict is Verdict.PERMANENT and "sender refused" in result.response
    assert not any(r.hard_bounce for r in result.recipients)
    assert parked == 1  # every reply of the group was read: the session is reusable


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


async def deliver_twice(up: Any, raw: bytes = RAW) -> list[Any]:
    """Two deliveries through one driver (the second on the parked session)."""
    async with httpx.AsyncClient() as http:
        ctx = providers.Context(http=http, connect_timeout=5, send_timeout=5)
        driver = providers.build(smtp(up.port, None, tls="none", username=None, password=None), ctx)
        results = [await driver.deliver(envelope(raw)) for _ in range(2)]
        await ctx.smtp_pool.aclose()
    return results


async def test_a_small_bdat_rides_with_the_envelope_on_a_fresh_session(nursery: trio.Nursery) -> None:
    up = await sink(nursery)
    results = await deliver_twice(up)
    assert [r.verdict for r in results] == [Verdict.DELIVERED] * 2
    assert [m.content for m in up.messages] == [RAW] * 2
    rcpts = ["RcptTo"] * len(RCPT)
    # fresh: one write, one round trip; reused: RSET probes the session before any content
    assert ["MailFrom", *rcpts, "EndOfData"] in up.groups
    assert up.groups[-3:] == [["Rset", "MailFrom", *rcpts], ["EndOfData"], ["Quit"]]


async def test_a_large_bdat_waits_for_the_envelope_replies(nursery: trio.Nursery) -> None:
    up = await sink(nursery)
    raw = RAW + (b"x" * 78 + b"\r\n") * (PIPELINED_BDAT_MAX // 80 + 1)
    results = await deliver_twice(up, raw)
    assert [r.verdict for r in results] == [Verdict.DELIVERED] * 2
    assert [m.content for m in up.messages] == [raw] * 2
    assert ["MailFrom", *["RcptTo"] * len(RCPT)] in up.groups
    assert "EndOfData" not in up.groups[up.groups.index(["MailFrom", *["RcptTo"] * len(RCPT)])]


async def test_data_is_pipelined_with_the_envelope(nursery: trio.Nursery) -> None:
    up = await sink(nursery, chunking=False)
    results = await deliver_twice(up, RAW + b".leading dot\r\n")
    assert [r.verdict for r in results] == [Verdict.DELIVERED] * 2
    assert [(m.content, m.mail_options) for m in up.messages] == [(RAW + b".leading dot\r\n", ("DATA",))] * 2
    rcpts = ["RcptTo"] * len(RCPT)
    assert up.groups[0:2] == [["Ehlo"], ["MailFrom", *rcpts, "DataStart"]]
    assert up.groups[-3:] == [["Rset", "MailFrom", *rcpts, "DataStart"], ["EndOfData"], ["Quit"]]


async def test_pipelined_data_after_every_recipient_was_refused_sends_nothing(nursery: trio.Nursery) -> None:
    up = await sink(nursery, chunking=False, refuse=frozenset(RCPT))
    results = await deliver_twice(up)
    for result in results:
        assert result.verdict is Verdict.PERMANENT
        assert {r.recipient for r in result.recipients if r.hard_bounce} == set(RCPT)
    assert up.messages == []
    # DATA came in the group and was refused (proto's server reports a DATA without a
    # recipient as a ProtocolViolation and answers 554, RFC 2920 3.1), so the session
    # stayed usable and was reused
    assert up.connections == 1
    assert up.groups[-2:] == [["Rset", "MailFrom", *["RcptTo"] * len(RCPT), "ProtocolViolation"], ["Quit"]]


async def _against_a_354_upstream(
    nursery: trio.Nursery, mail: bytes, rcpt: bytes
) -> tuple[providers.Result, int, list[bytes]]:
    """Deliver once to an upstream that ignores RFC 2920 3.1: MAIL and every RCPT get
    ``mail`` / ``rcpt``, the pipelined DATA gets 354 regardless, a "." gets 554. Returns
    the result, the sessions parked after it, and every read the upstream made after
    its 354 (until the pool closed)."""
    after_354: list[bytes] = []
    done = trio.Event()

    async def upstream(stream: trio.SocketStream) -> None:
        await stream.send_all(b"220 broken.test ESMTP\r\n")
        buffer = b""
        while b"DATA\r\n" not in buffer:
            buffer += await stream.receive_some(4096)
            if buffer.startswith(b"EHLO") and buffer.endswith(b"\r\n"):
                await stream.send_all(b"250-broken.test\r\n250 PIPELINING\r\n")
                buffer = b""
        replies = [mail if line.startswith(b"MAIL") else rcpt if line.startswith(b"RCPT")
                   else b"354 go on" for line in buffer.split(b"\r\n") if line]
        await stream.send_all(b"".join(r + b"\r\n" for r in replies))
        while chunk := await stream.receive_some(4096):
            after_354.append(chunk)
            if chunk == b".\r\n":
                await stream.send_all(b"554 5.5.1 no valid recipients\r\n")
            elif chunk.startswith(b"QUIT"):
                await stream.send_all(b"221 bye\r\n")
        done.set()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, upstream, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    async with httpx.AsyncClient() as http:
        ctx = providers.Context(http=http, connect_timeout=5, send_timeout=5)
        driver = providers.build(smtp(port, None, tls="none", username=None, password=None), ctx)
        result = await driver.deliver(envelope())
        parked = ctx.smtp_pool.statistics().idle
        await ctx.smtp_pool.aclose()
        with trio.fail_after(5):
            await done.wait()
    return result, parked, after_354


async def test_a_354_without_recipients_gets_a_lone_dot_and_the_session_is_kept(
    nursery: trio.Nursery,
) -> None:
    """Every RCPT refused, DATA answered 354 anyway: the client sends a lone "." (no
    content), reads the refusal, and parks the session for the next message."""
    result, parked, after_354 = await _against_a_354_upstream(nursery, b"250 ok", b"550 5.1.1 no")
    assert result.verdict is Verdict.PERMANENT
    assert parked == 1  # the session is usable
    assert after_354 == [b".\r\n", b"QUIT\r\n"]


async def test_a_354_after_a_refused_mail_but_an_accepted_rcpt_gets_nothing(
    nursery: trio.Nursery,
) -> None:
    """MAIL refused, yet a RCPT answered 250 and DATA 354 (a badly broken upstream): a "."
    there could deliver an empty message, so nothing is sent and the session is closed."""
    result, parked, after_354 = await _against_a_354_upstream(nursery, b"550 5.7.1 no", b"250 ok")
    assert result.verdict is Verdict.PERMANENT
    assert parked == 0
    assert after_354 == []


async def test_some_recipients_refused_with_pipelined_data(nursery: trio.Nursery) -> None:
    up = await sink(nursery, chunking=False, refuse=frozenset(RCPT[:1]))
    results = await deliver_twice(up)
    for result in results:
        verdicts = {r.recipient: r.verdict for r in result.recipients}
        assert verdicts == {RCPT[0]: Verdict.PERMANENT, **{r: Verdict.DELIVERED for r in RCPT[1:]}}
    assert [m.rcpt_tos for m in up.messages] == [tuple(RCPT[1:])] * 2


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

