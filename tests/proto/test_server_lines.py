"""Command lines are bytes: framing, length limits, forbidden bytes, the error budget."""

from __future__ import annotations

import pytest
from helpers import EHLO, drive, greeted, run

import proto


def noop_line(total: int) -> bytes:
    """A NOOP command line of exactly ``total`` octets, CRLF included."""
    return b"NOOP " + b"x" * (total - 7) + b"\r\n"


@pytest.mark.parametrize("total, code", [(511, 250), (512, 250), (513, 500)])
def test_command_line_limit_512(total: int, code: int) -> None:
    line = noop_line(total)
    assert len(line) == total
    t = run(line + b"NOOP\r\n")
    assert t.codes == [code, 250]  # in sync afterwards either way
    if code == 500:
        assert t.output.startswith(b"500 5.5.6 Line too long")


def test_overlong_line_is_discarded_as_it_arrives() -> None:
    conn = greeted()
    conn.receive_data(b"NOOP " + b"x" * 10_000)
    assert conn.next_event() is proto.NEED_DATA
    assert conn.buffered == 0
    conn.receive_data(b"y" * 100_000)
    assert conn.next_event() is proto.NEED_DATA
    assert conn.buffered == 0
    conn.receive_data(b"zz\r\nNOOP\r\n")
    event = conn.next_event()
    assert isinstance(event, proto.ProtocolViolation) and event.reply.code == 500
    conn.send(event.reply)
    assert conn.next_event() == proto.Noop()


def test_incomplete_line_stays_below_the_limit() -> None:
    conn = greeted()
    conn.receive_data(b"N" * 511)
    assert conn.next_event() is proto.NEED_DATA
    assert conn.buffered == 511
    conn.receive_data(b"N")
    assert conn.next_event() is proto.NEED_DATA
    assert conn.buffered == 0


def test_custom_command_line_limit() -> None:
    t = run(noop_line(100) + noop_line(101), limits=proto.Limits(max_command_line=100))
    assert t.codes == [250, 500]


def test_bare_lf_in_command_line_is_refused() -> None:
    t = run(b"NOOP\nNOOP\r\n")
    assert t.codes == [500, 250]
    assert t.output.startswith(b"500 5.5.2 Syntax error: bare LF")


def test_bare_lf_cannot_smuggle_a_second_command() -> None:
    t = run(EHLO + b"MAIL FROM:<a@b.example>\nRCPT TO:<c@d.example>\r\n")
    assert not t.of(proto.MailFrom) and not t.of(proto.RcptTo)
    assert t.codes == [250, 500, 503]  # the RCPT half is its own (out of sequence) line


def test_bare_cr_in_command_line_is_refused() -> None:
    t = run(EHLO + b"MAIL FROM:<a@b.example>\rRCPT TO:<c@d.example>\r\n")
    assert t.codes == [250, 500]
    assert b"bare CR" in t.output
    assert not t.of(proto.MailFrom)


def test_nul_in_command_line_is_refused() -> None:
    t = run(EHLO + b"MAIL FROM:<a\x00@b.example>\r\n")
    assert t.codes == [250, 500] and b"NUL" in t.output


@pytest.mark.parametrize("junk", [b"\xff\xfe", b"\xc3", b"\xed\xa0\x80"])  # bad, truncated, surrogate
def test_invalid_utf8_in_command_line_is_refused(junk: bytes) -> None:
    t = run(EHLO + b"MAIL FROM:<" + junk + b"@b.example>\r\n")
    assert t.codes == [250, 500] and b"UTF-8" in t.output
    assert not t.of(proto.MailFrom)


@pytest.mark.parametrize("limit", [1, 2, 10])
def test_too_many_errors_gives_421_at_limit_plus_one(limit: int) -> None:
    garbage = b"FROB\r\n" * (limit + 5)
    t = run(garbage, limits=proto.Limits(max_errors=limit))
    assert t.codes == [500] * limit + [421]
    assert t.output.endswith(b"421 4.7.0 mx.example Too many errors, closing connection\r\n")


def test_error_budget_limit_minus_one_and_limit_keep_session() -> None:
    for errors in (9, 10):
        conn = greeted()
        drive(conn, [b"FROB\r\n" * errors + b"NOOP\r\n"])
        assert conn.state is proto.COMMAND
        assert conn.session.errors == errors


def test_error_state_refuses_everything_but_421() -> None:
    conn = greeted(limits=proto.Limits(max_errors=1))
    conn.receive_data(b"FROB\r\nFROB\r\n")
    event = conn.next_event()
    assert isinstance(event, proto.ProtocolViolation)
    conn.send(event.reply)
    with pytest.raises(proto.RemoteProtocolError):
        conn.next_event()
    with pytest.raises(proto.LocalProtocolError, match="ERROR"):
        conn.next_event()
    with pytest.raises(proto.LocalProtocolError, match="ERROR"):
        conn.send(proto.Reply(500, "no"))
    conn.send(proto.Reply(421, "bye", "4.7.0"))
    assert conn.state is proto.CLOSING


def test_an_accepted_message_refills_the_error_budget() -> None:
    conn = greeted(limits=proto.Limits(max_errors=2))
    message = (b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"
               b"Subject: x\r\n\r\nbody\r\n.\r\n")
    t = drive(conn, [EHLO + b"FROB\r\nFROB\r\n" + message + b"FROB\r\nFROB\r\nNOOP\r\n"])
    assert b"421" not in t.output
    assert conn.state is proto.COMMAND
    assert conn.session.errors == 2


def test_noop_does_not_refill_the_error_budget() -> None:
    conn = greeted(limits=proto.Limits(max_errors=2))
    t = drive(conn, [b"FROB\r\nNOOP\r\nFROB\r\nNOOP\r\nFROB\r\n"])
    assert t.output.endswith(b"Too many errors, closing connection\r\n")
