"""What a hostile client with nothing but TCP connections must not achieve: end the
process, hold every slot, or get past a fault in its own session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
import trio

import proto
from relay.smtp.policy import SubmissionPolicy

from .conftest import PASSWORD, Relay, in_thread
from .rawclient import RawClient

HEADERS = b"From: app@example.com\r\nSubject: t\r\n\r\n"
OTHER_CLIENT = "127.0.0.2"


def _submit(relay: Relay, source: str | None = None) -> tuple[int, list[str]]:
    """A well-behaved client: STARTTLS, AUTH, one message."""
    with RawClient(relay.port, source=source) as c:
        c.login(relay.client_context, relay.account.email, PASSWORD)
        assert c.command(b"MAIL FROM:<app@example.com>")[0] == 250
        assert c.command(b"RCPT TO:<a@example.net>")[0] == 250
        assert c.command(b"DATA")[0] == 354
        c.send(HEADERS + b"hello\r\n.\r\n")
        return c.reply()


@pytest.fixture
def vrfy_fault(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Inject a bug into the policy: answering ``VRFY boom`` raises."""
    respond = SubmissionPolicy.respond

    async def faulty(self: SubmissionPolicy, event: object) -> proto.Reply | None:
        if isinstance(event, proto.AutoReply) and event.reason == "VRFY":
            raise RuntimeError("injected fault")
        return await respond(self, event)

    monkeypatch.setattr(SubmissionPolicy, "respond", faulty)
    yield


async def test_a_fault_in_one_session_is_contained(relay: Relay, vrfy_fault: None) -> None:
    bystander = await in_thread(lambda: RawClient(relay.port))
    try:
        assert (await in_thread(bystander.reply))[0] == 220
        assert (await in_thread(lambda: bystander.command(b"EHLO bystander.test")))[0] == 250

        def faulty_session() -> tuple[tuple[int, list[str]], bool]:
            with RawClient(relay.port) as c:
                c.reply()
                c.command(b"EHLO c.test")
                return c.command(b"VRFY boom"), c.closed_by_peer()

        with structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars]
        ) as logs:
            (code, text), closed = await in_thread(faulty_session)
        assert code == 421 and text[0].startswith("4.3.0") and closed
        failed = [e for e in logs if e["event"] == "session failed"]
        assert len(failed) == 1 and failed[0]["correlation_id"] and failed[0]["exc_info"]
        # The session that was open meanwhile, and a new one, are served.
        assert (await in_thread(lambda: bystander.command(b"NOOP")))[0] == 250
        assert (await in_thread(lambda: _submit(relay)))[0] == 250
    finally:
        bystander.close()


HOSTILE_LINES = [
    b"MAIL FROM:<a@[127.0.0\x13.1]>",  # a control character echoed in a reply
    b"MAIL FROM:<a@a.example> SMTPUTF8" + b"X" * 480,  # a parameter echoed past 512 octets
]


@pytest.mark.parametrize("line", HOSTILE_LINES, ids=["control-in-literal", "long-parameter"])
async def test_hostile_command_lines_get_a_reply_and_the_session_goes_on(relay: Relay, line: bytes) -> None:
    def session() -> tuple[tuple[int, list[str]], tuple[int, list[str]]]:
        with RawClient(relay.port) as c:
            c.login(relay.client_context, relay.account.email, PASSWORD)
            return c.command(line), c.command(b"NOOP")

    (code, text), noop = await in_thread(session)
    assert 500 <= code < 600, (code, text)
    assert all(len(t) <= 500 and t.isprintable() for t in text)
    assert noop[0] == 250
    assert (await in_thread(lambda: _submit(relay)))[0] == 250


@pytest.mark.parametrize("smtp_env", [{"RELAY_SMTP__MAX_CONNECTIONS_PER_IP": "3"}])
async def test_one_address_cannot_hold_every_slot(relay: Relay, smtp_env: dict[str, str]) -> None:
    held = [await in_thread(lambda: RawClient(relay.port)) for _ in range(3)]
    try:
        for c in held:
            assert (await in_thread(c.reply))[0] == 220
        # limit + 1 from the same address: refused at once.
        with await in_thread(lambda: RawClient(relay.port)) as extra:
            code, text = await in_thread(extra.reply)
            assert code == 421 and text[0].startswith("4.7.0")
            assert await in_thread(extra.closed_by_peer)
        # Another address is served meanwhile.
        assert (await in_thread(lambda: _submit(relay, source=OTHER_CLIENT)))[0] == 250
        # A slot given back is a slot the address may use again.
        held.pop().close()
        with trio.fail_after(10):
            while True:
                with await in_thread(lambda: RawClient(relay.port)) as again:
                    if (await in_thread(again.reply))[0] == 220:
                        break
                await trio.sleep(0.01)  # the server has not seen the close yet
    finally:
        for c in held:
            c.close()


# Unfinished implicit-TLS handshakes holding slots: test_connections.py, on a mock clock.


@pytest.mark.parametrize("smtp_env", [{"RELAY_SMTP__MAX_JUNK_COMMANDS": "4"}])
async def test_commands_that_move_no_mail_are_bounded(relay: Relay, smtp_env: dict[str, str]) -> None:
    """Otherwise one NOOP every command_timeout keeps a slot for ever."""
    def session() -> tuple[list[int], tuple[int, list[str]], bool]:
        with RawClient(relay.port) as c:
            c.login(relay.client_context, relay.account.email, PASSWORD)  # 2 EHLOs: 2 of 4
            codes = [c.command(b"NOOP")[0], c.command(b"RSET")[0]]  # 4 of 4
            # An accepted message starts the count again.
            assert c.command(b"MAIL FROM:<app@example.com>")[0] == 250
            assert c.command(b"RCPT TO:<a@example.net>")[0] == 250
            assert c.command(b"DATA")[0] == 354
            c.send(HEADERS + b"hi\r\n.\r\n")
            assert c.reply()[0] == 250
            codes += [c.command(b"NOOP")[0] for _ in range(4)]
            return codes, c.command(b"NOOP"), c.closed_by_peer()

    codes, (code, text), closed = await in_thread(session)
    assert codes == [250] * 6
    assert code == 421 and text[0].startswith("4.7.0") and closed


@pytest.mark.parametrize("smtp_env", [{"RELAY_SMTP__MAX_CONNECTIONS_PER_IP": "1"}])
async def test_a_refusal_flood_is_one_log_line_per_address(relay: Relay, smtp_env: dict[str, str]) -> None:
    held = await in_thread(lambda: RawClient(relay.port))
    try:
        assert (await in_thread(held.reply))[0] == 220
        with structlog.testing.capture_logs() as logs:
            for _ in range(5):
                with await in_thread(lambda: RawClient(relay.port)) as refused:
                    assert (await in_thread(refused.reply))[0] == 421
        lines = [e for e in logs if e["event"] == "too many connections from one address"]
        assert len(lines) == 1 and lines[0]["client_ip"] == "127.0.0.1"
    finally:
        held.close()
