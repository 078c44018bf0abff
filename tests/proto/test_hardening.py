"""No input from the network takes proto down: bytes-level regression tests.

Each input here once made proto raise something other than ``RemoteProtocolError``
(the first two were reported; the rest were found by ``tests/proto/fuzz.py`` against
the code before the fix) or is a neighbour of one. Server inputs go through ``run``
(whole and byte at a time); client inputs through ``feed_client`` both ways.
"""

from __future__ import annotations

import pytest
from helpers import EHLO, ENVELOPE, run

import proto
from proto._text import MAX_ECHO, MAX_REPLY_TEXT, echo
from proto._writers import write_reply


def assert_wire_safe(output: bytes) -> None:
    """Every reply line: printable ASCII, at most 512 octets with its CRLF."""
    assert output.endswith(b"\r\n")
    for line in output[:-2].split(b"\r\n"):
        assert len(line) + 2 <= 512, len(line)
        assert line.isascii() and line.decode().isprintable(), line


# ------------------------------------------------------------------ echo()


def test_echo_leaves_safe_text_alone() -> None:
    assert echo("user@example.org") == "user@example.org"
    assert echo("x" * MAX_ECHO) == "x" * MAX_ECHO


@pytest.mark.parametrize(
    "text, escaped",
    [
        ("a\x13b", "a\\x13b"),
        ("tab\there", "tab\\x09here"),
        ("caf\u00e9", "caf\\xe9"),
        ("a\u2028b", "a\\u2028b"),
        ("\U0001f600", "\\U0001f600"),
        ("\x7f\x00", "\\x7f\\x00"),
    ],
)
def test_echo_escapes_everything_outside_printable_ascii(text: str, escaped: str) -> None:
    assert echo(text) == escaped


@pytest.mark.parametrize("length, cut", [(MAX_ECHO - 1, False), (MAX_ECHO, False), (MAX_ECHO + 1, True)])
def test_echo_bound_at_the_limit(length: int, cut: bool) -> None:
    result = echo("y" * length)
    assert len(result) <= MAX_ECHO
    assert result.endswith("...") is cut


def test_echo_never_cuts_an_escape_in_half() -> None:
    result = echo("\x01" * 200)
    assert len(result) <= MAX_ECHO and result.endswith("...")
    assert result[:-3] == "\\x01" * ((MAX_ECHO - 3) // 4)


def test_echo_is_idempotent() -> None:
    for text in ("plain", "\x13" * 50, "\u00e9" * 300, "z" * 1000):
        once = echo(text)
        assert echo(once) == once


# ------------------------------------------------------------------ server side


def test_control_character_in_address_literal() -> None:
    """Reported: the literal was echoed raw and Reply's validator raised ValueError
    out of next_event()."""
    t = run(b"EHLO x\r\nMAIL FROM:<a@[127.0.0\x13.1]>\r\n")
    assert t.codes == [250, 501]
    assert t.output.endswith(b"501 5.1.7 Bad sender address syntax: invalid address literal [127.0.0\\x13.1]\r\n")
    assert_wire_safe(t.output)


def test_overlong_parameter_is_not_echoed_whole() -> None:
    """Reported: a ~480-octet parameter (the line under 512) was echoed in a 555 over
    512 octets, and send() of the connection's own reply raised LocalProtocolError."""
    t = run(b"EHLO x\r\nMAIL FROM:<a@a.example> SMTPUTF8" + b"X" * 470 + b"\r\n")
    assert t.codes == [250, 555]
    assert b"MAIL parameter SMTPUTF8XXX" in t.output and b"... not recognized" in t.output
    assert_wire_safe(t.output)


@pytest.mark.parametrize(
    "command, code",
    [
        (b"MAIL FROM:<a@[\x13]>\r\n", 501),  # minimized by the fuzzer
        (b"MAIL FROM:<> SMTPUTF8" + b"X" * 480 + b"\x13\r\n", 501),  # found: both faults at once
        (b"MAIL FROM:<> UTF8" + b"X" * 490 + b"\r\n", 555),  # found: 527 characters of text
        (b"MAIL FROM:<a@a.example> K\x01=v\r\n", 501),  # invalid parameter
        (b"MAIL FROM:<a@a.example> SIZE=\x7f\r\n", 501),  # invalid value
        (b"MAIL FROM:<a@a.example> X-Y=\x7f\xc3\xa9 SMTPUTF8\r\n", 501),
        (b"MAIL FROM:<a@b.example> " + b"K" * 240 + b"=1 " + b"K" * 240 + b"=1\r\n", 501),  # given twice
        (b"MAIL FROM:<a@b.example> " + b"K" * 480 + b"\x01\r\n", 501),
        (b"MAIL FROM:<\x1b[31m@a.example>\r\n", 501),  # invalid local part
        (b"MAIL FROM:<\x7f\x7f" + b"\x01" * 120 + b"@b.example>\r\n", 501),
        (b"MAIL FROM:<a@" + "\u00e9".encode() * 70 + b".example> SMTPUTF8\r\n", 501),  # invalid domain
        (b"MAIL FROM:<@a\x01,@b:c@d.example>\r\n", 501),  # source route
        (b"MAIL FROM:<" + b"\x01" * 250 + b">\r\n", 501),  # not a mailbox
        (b"MAIL FROM:<a@b" + "\u2028".encode() + b"c.example> SMTPUTF8\r\n", 501),  # a line separator
        (b"MAIL FROM:<a" + "\u0085".encode() + b"b@c.example> SMTPUTF8\r\n", 501),  # NEL, a C1 control
    ],
)
def test_reply_text_echoing_the_peer_stays_on_the_wire(command: bytes, code: int) -> None:
    t = run(EHLO + command)
    assert t.codes == [250, code]
    assert_wire_safe(t.output)


def test_recipient_syntax_error_is_echoed_safely() -> None:
    t = run(ENVELOPE + b"RCPT TO:<\x01@[\x02]>\r\n")
    assert t.codes == [250, 250, 250, 501]
    assert t.output.endswith(b"501 5.1.3 Bad recipient address syntax: invalid local part \\x01\r\n")


def test_every_violation_fits_one_reply_line_with_any_enhanced_code() -> None:
    t = run(EHLO + b"MAIL FROM:<a@b.example> SMTPUTF8" + b"\x01" * 470 + b"\r\n")
    (violation,) = t.of(proto.ProtocolViolation)
    assert isinstance(violation, proto.ProtocolViolation)
    assert all(len(line) <= MAX_REPLY_TEXT for line in violation.reply.text)
    widest = proto.Reply(violation.reply.code, violation.reply.text, "5.999.999")
    assert len(write_reply(widest, enhanced=True)) <= 512


# ------------------------------------------------------------------ client side

EHLO_REPLY = b"250-mx.example\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 CHUNKING\r\n"


def feed_client(client: proto.ClientConnection, data: bytes, bytewise: bool) -> list[proto.Event]:
    """Feed server bytes whole or one octet at a time; return the events until the
    client needs more data or it is our move."""
    events: list[proto.Event] = []
    for piece in [data[i : i + 1] for i in range(len(data))] if bytewise else [data]:
        client.receive_data(piece)
        while (event := client.next_event()) is not proto.NEED_DATA and event is not proto.PAUSED:
            assert isinstance(event, proto.Event)
            events.append(event)
    return events


def ready(bytewise: bool, ehlo_reply: bytes = EHLO_REPLY) -> proto.ClientConnection:
    client = proto.ClientConnection()
    feed_client(client, b"220 mx.example ESMTP\r\n", bytewise)
    client.send(proto.Ehlo("relay.example"))
    feed_client(client, ehlo_reply, bytewise)
    return client


BOTH = pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])


@BOTH
def test_client_size_with_a_non_ascii_digit(bytewise: bool) -> None:
    """Found: ``"²".isdigit()`` is true but ``int("²")`` raises ValueError."""
    client = ready(bytewise, b"250-mx.example\r\n250 SIZE \xc2\xb2\r\n")
    assert client.capabilities is not None and client.capabilities.size == 0


@BOTH
@pytest.mark.parametrize(
    "line, text",
    [
        (b"250 \xff\xfe caf\xc3\xa9 \x00\r\n", "\\xff\\xfe caf\\xe9 \\x00"),
        (b"250 a\x13b\rc\r\n", "a\\x13b\\x0dc"),
        (b"250 x\xe2\x80\xa8y\r\n", "x\\u2028y"),
    ],
)
def test_client_reply_text_becomes_printable_ascii(bytewise: bool, line: bytes, text: str) -> None:
    client = ready(bytewise)
    client.send(proto.Noop())
    (event,) = feed_client(client, line, bytewise)
    assert isinstance(event, proto.ServerReply) and event.reply.text == (text,)


@BOTH
def test_client_reply_of_invalid_utf8_can_be_passed_on(bytewise: bool) -> None:
    """Found: 508 octets of 0xFF became 508 U+FFFD, 1524 octets when the relay sent the
    text on; now each is ``\\xff`` and the text is cut to fit any reply line."""
    client = ready(bytewise)
    client.send(proto.Noop())
    (event,) = feed_client(client, b"550 " + b"\xff" * 506 + b"\r\n", bytewise)
    assert isinstance(event, proto.ServerReply)
    (text,) = event.reply.text
    assert len(text) <= MAX_REPLY_TEXT and text.isascii() and text.endswith("...")
    assert len(write_reply(proto.Reply(550, text, "5.999.999"), enhanced=True)) <= 512


@BOTH
def test_client_pipelined_rset_and_new_mail_in_one_group(bytewise: bool) -> None:
    """Found: the first transaction's RCPT reply was matched against the second
    transaction's recipients (StopIteration when it had none left)."""
    alice, bob, carol = (proto.Address(n, "example.org") for n in ("alice", "bob", "carol"))
    client = ready(bytewise)
    out = b"".join(client.send(c) for c in (proto.MailFrom(alice), proto.RcptTo(bob), proto.Rset(),
                                               proto.MailFrom(alice), proto.RcptTo(carol)))
    assert out.count(b"\r\n") == 5
    events = feed_client(client, b"250 ok\r\n550 no bob\r\n250 reset\r\n250 ok\r\n250 ok carol\r\n", bytewise)
    assert [e.reply.code for e in events if isinstance(e, proto.ServerReply)] == [250, 550, 250, 250, 250]
    txn = client.transaction
    assert txn is not None and txn.mail_reply is not None
    assert [(a, r.code if r else None) for a, r in txn.recipients] == [(carol, 250)]
    assert client.send(proto.DataStart()) == b"DATA\r\n"


@BOTH
def test_client_pipelined_mail_refused_does_not_clear_a_newer_transaction(bytewise: bool) -> None:
    alice, bob = proto.Address("alice", "example.org"), proto.Address("bob", "example.org")
    client = ready(bytewise)
    for command in (proto.MailFrom(alice), proto.Rset(), proto.MailFrom(alice), proto.RcptTo(bob)):
        client.send(command)
    feed_client(client, b"550 no\r\n250 reset\r\n250 ok\r\n250 ok\r\n", bytewise)
    txn = client.transaction
    assert txn is not None and txn.accepted == (bob,)


@BOTH
@pytest.mark.parametrize(
    "mechanism, challenges",
    [("LOGIN", [b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n", b"334 more?\r\n"]), ("PLAIN", [b"334 \r\n"])],
)
def test_client_challenge_after_the_last_response_cancels(
    bytewise: bool, mechanism: str, challenges: list[bytes]
) -> None:
    """Found: a 334 after the last response left the client in AUTH with nothing to
    send; AuthResponse raised LocalProtocolError. Now it sends "*" (RFC 4954 4)."""
    client = ready(bytewise)
    wire = client.send(proto.AuthCredentials(mechanism, "", "alice", "s3cret"))
    sent = []
    for challenge in challenges:
        feed_client(client, challenge, bytewise)
        assert client.state is proto.AUTH
        sent.append(client.send(proto.AuthResponse()))
    assert sent[-1] == b"*\r\n"
    if mechanism == "PLAIN":
        assert wire.startswith(b"AUTH PLAIN ") and len(wire) > len(b"AUTH PLAIN \r\n")
    (event,) = feed_client(client, b"501 5.7.0 cancelled\r\n", bytewise)
    assert isinstance(event, proto.ServerReply) and not client.authenticated
    assert client.state is proto.COMMAND


def test_client_refuses_credentials_too_long_for_max_auth_line_up_front() -> None:
    client = proto.ClientConnection(limits=proto.Limits(max_auth_line=100))
    feed_client(client, b"220 mx.example\r\n", False)
    client.send(proto.Ehlo("relay.example"))
    feed_client(client, EHLO_REPLY, False)
    with pytest.raises(proto.LocalProtocolError, match="max_auth_line"):
        client.send(proto.AuthCredentials("LOGIN", "", "a" * 200, "pw"))
    assert client.outstanding == 0 and client.state is proto.COMMAND


def test_client_refuses_mechanisms_it_cannot_drive() -> None:
    client = ready(False, b"250-mx.example\r\n250 AUTH CRAM-MD5 PLAIN\r\n")
    with pytest.raises(proto.LocalProtocolError, match="PLAIN and LOGIN"):
        client.send(proto.AuthCredentials("CRAM-MD5", "", "alice", "pw"))

