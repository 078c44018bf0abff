"""ServerConnection: one test per command and reply code (RFC 5321 and extensions)."""

from __future__ import annotations

import pytest
from helpers import EHLO, ENVELOPE, accept, drive, greeted, run

import proto

A = proto.Address


def test_greeting_is_owed_before_anything_is_parsed() -> None:
    conn = proto.ServerConnection("mx.example")
    assert conn.state is proto.GREETING
    conn.receive_data(b"EHLO early\r\n")
    assert conn.next_event() is proto.PAUSED
    assert conn.send(proto.Reply(220, "mx.example ESMTP")) == b"220 mx.example ESMTP\r\n"
    assert conn.session.early_talker
    assert conn.next_event() == proto.Ehlo("early")


def test_greeting_554_then_only_quit() -> None:
    conn = proto.ServerConnection("mx.example")
    conn.send(proto.Reply(554, "No service", "5.3.2"))
    t = drive(conn, [EHLO + b"QUIT\r\n"])
    assert t.codes == [503, 221]


def test_greeting_must_be_220_554_or_421() -> None:
    conn = proto.ServerConnection("mx.example")
    with pytest.raises(proto.LocalProtocolError, match="GREETING"):
        conn.send(proto.Reply(250, "hi"))
    assert conn.send(proto.Reply(421, "busy", "4.3.2")) == b"421 busy\r\n"
    assert conn.state is proto.CLOSING


def test_ehlo_reply_lists_offered_extensions() -> None:
    t = run(EHLO, auth_requires_tls=False)
    assert t.events == [proto.Ehlo("client.example")]
    assert t.output == (
        b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 26214400\r\n250-8BITMIME\r\n"
        b"250-SMTPUTF8\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n"
        b"250 AUTH PLAIN LOGIN\r\n"
    )


def test_ehlo_reply_hides_auth_before_tls_and_starttls_under_tls() -> None:
    assert b"AUTH" not in run(EHLO).output
    under_tls = run(EHLO, tls_active=True).output
    assert b"STARTTLS" not in under_tls and b"AUTH PLAIN LOGIN" in under_tls


def test_ehlo_reply_with_nothing_offered() -> None:
    ext = proto.Extensions(
        starttls=False, auth=(), size=False, eightbitmime=False, smtputf8=False,
        pipelining=False, chunking=False, enhanced_status_codes=False,
    )
    t = run(EHLO, extensions=ext, respond=lambda e, c: proto.Reply(250, "mx.example hello"))
    assert t.output == b"250 mx.example hello\r\n"


def test_ehlo_without_domain_is_501() -> None:
    assert run(b"EHLO\r\nHELO \r\n").codes == [501, 501]


def test_helo_sets_session_without_esmtp() -> None:
    conn = greeted()
    t = drive(conn, [b"HELO client.example\r\nMAIL FROM:<a@b.example> SIZE=10\r\n"])
    assert t.output.startswith(b"250 mx.example\r\n")
    assert conn.session.ehlo_name == "client.example" and not conn.session.esmtp
    assert t.codes[1] == 555  # ESMTP parameters need EHLO


def test_ehlo_refused_by_policy_leaves_session_unnamed() -> None:
    conn = greeted()
    drive(conn, [EHLO], respond=lambda e, c: proto.Reply(550, "go away", "5.7.1"))
    assert conn.session.ehlo_name is None


def test_full_transaction_tracks_envelope() -> None:
    conn = greeted()
    seen: list[proto.Transaction | None] = []

    def respond(event: proto.Event, c: proto.ServerConnection) -> proto.Reply | None:
        seen.append(c.transaction)
        return accept(event, c)

    t = drive(conn, [ENVELOPE + b"RCPT TO:<postmaster>\r\nDATA\r\nhi\r\n.\r\n"], respond)
    assert [type(e) for e in t.events] == [
        proto.Ehlo, proto.MailFrom, proto.RcptTo, proto.RcptTo, proto.DataStart, proto.Data, proto.EndOfData,
    ]
    assert t.of(proto.RcptTo)[1] == proto.RcptTo(A("postmaster", ""))
    at_end = seen[-1]
    assert at_end is not None
    assert at_end.reverse_path == A("alice", "example.org")
    assert at_end.forward_paths == (A("bob", "example.net"), A("postmaster", ""))
    assert at_end.method == "DATA"
    assert conn.transaction is None  # the end of data ends the transaction
    assert t.codes == [250, 250, 250, 250, 354, 250]


def test_replies_carry_enhanced_codes_only_when_offered() -> None:
    assert run(ENVELOPE).output.endswith(b"250 2.0.0 OK\r\n")
    plain = run(ENVELOPE, extensions=proto.Extensions(enhanced_status_codes=False))
    assert plain.output.endswith(b"250 OK\r\n")


def test_pipelined_commands_come_out_in_order_and_wait_for_replies() -> None:
    conn = greeted()
    conn.receive_data(ENVELOPE + b"DATA\r\n")
    assert conn.next_event() == proto.Ehlo("client.example")
    assert conn.next_event() is proto.PAUSED  # the EHLO reply is owed first
    conn.send(proto.Reply(250, ""))
    assert isinstance(conn.next_event(), proto.MailFrom)
    conn.send(proto.Reply(250, "OK"))
    assert isinstance(conn.next_event(), proto.RcptTo)
    conn.send(proto.Reply(550, "No such user", "5.1.1"))
    assert conn.next_event() == proto.ProtocolViolation(
        proto.Reply(503, "Need RCPT command (no valid recipients)", "5.5.1"),
        "Need RCPT command (no valid recipients)",
    )


def test_mail_before_ehlo_is_503() -> None:
    assert run(b"MAIL FROM:<a@b.example>\r\n").codes == [503]


def test_nested_mail_is_503() -> None:
    assert run(ENVELOPE + b"MAIL FROM:<a@b.example>\r\n").codes == [250, 250, 250, 503]


def test_rcpt_before_mail_is_503() -> None:
    assert run(EHLO + b"RCPT TO:<a@b.example>\r\n").codes == [250, 503]


def test_data_before_rcpt_is_503() -> None:
    assert run(EHLO + b"DATA\r\n").codes == [250, 503]
    assert run(EHLO + b"MAIL FROM:<>\r\nDATA\r\n").codes == [250, 250, 503]


@pytest.mark.parametrize(
    "line, code, enhanced",
    [
        (b"MAIL FROM:a@b.example", 501, "5.5.2"),
        (b"MAIL TO:<a@b.example>", 501, "5.5.2"),
        (b"MAIL FROM:<a@b.example>junk", 501, "5.5.2"),
        (b"MAIL FROM:<a@@b.example>", 501, "5.1.7"),
        (b"MAIL FROM:<a@-b.example>", 501, "5.1.7"),
        (b"MAIL FROM:<a@b.example> FOO=bar", 555, "5.5.4"),
        (b"MAIL FROM:<a@b.example> SIZE=abc", 501, "5.5.4"),
        (b"MAIL FROM:<a@b.example> SIZE=99999999999", 552, "5.3.4"),
        (b"MAIL FROM:<a@b.example> BODY=BINARYMIME", 555, "5.5.4"),
        (b"MAIL FROM:<a@b.example> SIZE=1 SIZE=2", 501, "5.5.4"),
        (b"MAIL FROM:<a@b.example> SMTPUTF8=yes", 501, "5.5.4"),
        ("MAIL FROM:<jos\u00e9@b.example>".encode(), 553, "5.6.7"),
    ],
)
def test_mail_from_faults(line: bytes, code: int, enhanced: str) -> None:
    t = run(EHLO + line + b"\r\n")
    (violation,) = t.of(proto.ProtocolViolation)
    assert isinstance(violation, proto.ProtocolViolation)
    assert (violation.reply.code, violation.reply.enhanced) == (code, enhanced)


def test_mail_from_params_parsed() -> None:
    t = run(EHLO + "MAIL FROM:<jos\u00e9@b.example> SIZE=1000 BODY=8bitmime SMTPUTF8\r\n".encode())
    (mail,) = t.of(proto.MailFrom)
    assert isinstance(mail, proto.MailFrom)
    assert (mail.size, mail.body, mail.smtputf8) == (1000, "8BITMIME", True)
    assert mail.reverse_path == A("jos\u00e9", "b.example")


def test_mail_from_null_path_and_space_after_colon() -> None:
    t = run(EHLO + b"MAIL FROM: <>\r\n")
    assert t.of(proto.MailFrom) == [proto.MailFrom(None)]


def test_mail_params_refused_when_extension_not_offered() -> None:
    ext = proto.Extensions(size=False, eightbitmime=False, smtputf8=False)
    for param in (b"SIZE=10", b"BODY=8BITMIME", b"SMTPUTF8"):
        assert run(EHLO + b"MAIL FROM:<a@b.example> " + param + b"\r\n", extensions=ext).codes == [250, 555]
    assert run(EHLO + b"MAIL FROM:<a@b.example> BODY=7BIT\r\n", extensions=ext).codes == [250, 250]


@pytest.mark.parametrize(
    "line, code, enhanced",
    [
        (b"RCPT TO:bob@example.net", 501, "5.5.2"),
        (b"RCPT FROM:<bob@example.net>", 501, "5.5.2"),
        (b"RCPT TO:<bob>", 501, "5.1.3"),
        (b"RCPT TO:<bob@example.net> NOTIFY=NEVER", 555, "5.5.4"),
        ("RCPT TO:<b\u00f6b@example.net>".encode(), 553, "5.6.7"),
    ],
)
def test_rcpt_to_faults(line: bytes, code: int, enhanced: str) -> None:
    t = run(EHLO + b"MAIL FROM:<a@b.example>\r\n" + line + b"\r\n")
    (violation,) = t.of(proto.ProtocolViolation)
    assert isinstance(violation, proto.ProtocolViolation)
    assert (violation.reply.code, violation.reply.enhanced) == (code, enhanced)


def test_rcpt_utf8_allowed_after_smtputf8_mail() -> None:
    t = run(EHLO + "MAIL FROM:<a@b.example> SMTPUTF8\r\nRCPT TO:<b\u00f6b@b\u00fccher.example>\r\n".encode())
    assert t.of(proto.RcptTo) == [proto.RcptTo(A("b\u00f6b", "b\u00fccher.example"))]


@pytest.mark.parametrize("limit", [1, 3])
def test_recipient_limit_gives_452_at_limit_plus_one(limit: int) -> None:
    rcpts = b"".join(b"RCPT TO:<r%d@example.net>\r\n" % i for i in range(limit + 1))
    t = run(EHLO + b"MAIL FROM:<a@b.example>\r\n" + rcpts, limits=proto.Limits(max_recipients=limit))
    assert t.codes == [250, 250] + [250] * limit + [452]
    assert t.output.endswith(b"452 4.5.3 Too many recipients\r\n")
    assert not t.of(proto.ProtocolViolation)  # a 452 is not the client's fault


def test_refused_recipients_do_not_count_towards_the_limit() -> None:
    conn = greeted(limits=proto.Limits(max_recipients=1))

    def refuse_first(event: proto.Event, c: proto.ServerConnection) -> proto.Reply | None:
        if isinstance(event, proto.RcptTo) and event.forward_path.local_part == "r0":
            return proto.Reply(550, "No such user", "5.1.1")
        return accept(event, c)

    t = drive(conn, [EHLO + b"MAIL FROM:<>\r\nRCPT TO:<r0@x.example>\r\nRCPT TO:<r1@x.example>\r\n"], refuse_first)
    assert t.codes == [250, 250, 550, 250]


def test_rset_clears_transaction() -> None:
    conn = greeted()
    t = drive(conn, [ENVELOPE + b"RSET\r\nDATA\r\n"])
    assert t.codes == [250, 250, 250, 250, 503]
    assert conn.transaction is None


def test_ehlo_clears_transaction() -> None:
    assert run(ENVELOPE + EHLO + b"DATA\r\n").codes == [250, 250, 250, 250, 503]


@pytest.mark.parametrize("line", [b"RSET x", b"QUIT now", b"DATA x", b"STARTTLS x"])
def test_arguments_where_none_are_allowed_are_501(line: bytes) -> None:
    t = run(ENVELOPE + line + b"\r\n")
    assert t.codes[-1] == 501


def test_noop_and_noop_with_argument() -> None:
    assert run(b"NOOP\r\nNOOP hello\r\n").events == [proto.Noop(), proto.Noop()]


def test_quit_221_closes() -> None:
    conn = greeted()
    t = drive(conn, [b"QUIT\r\nNOOP\r\n"])
    assert t.output == b"221 2.0.0 Bye\r\n" and conn.state is proto.CLOSING
    assert conn.next_event() is proto.PAUSED


def test_vrfy_is_252_and_help_214() -> None:
    t = run(b"VRFY bob\r\nHELP\r\nVRFY\r\n")
    assert t.codes == [252, 214, 501]
    assert t.output.startswith(b"252 2.5.0 Cannot VRFY user")


@pytest.mark.parametrize("verb", [b"EXPN staff", b"TURN", b"ETRN x", b"SAML FROM:<a@b>"])
def test_unimplemented_commands_are_502(verb: bytes) -> None:
    assert run(verb + b"\r\n").output.startswith(b"502 5.5.1")


def test_unknown_command_is_500() -> None:
    assert run(b"FROB\r\n").output == b"500 5.5.1 Command unrecognized\r\n"


def test_verbs_are_case_insensitive() -> None:
    assert run(b"ehlo x\r\nmail from:<a@b.example>\r\nrcpt to:<c@d.example>\r\nquit\r\n").codes == [250] * 3 + [221]


def test_http_request_ends_session_with_421() -> None:
    conn = greeted()
    conn.receive_data(b"GET / HTTP/1.1\r\n")
    with pytest.raises(proto.RemoteProtocolError) as info:
        conn.next_event()
    assert conn.state is proto.ERROR
    assert info.value.reply_hint is not None
    assert conn.send(info.value.reply_hint).startswith(b"421 4.7.0")
    assert conn.state is proto.CLOSING


def test_starttls_not_offered_or_without_ehlo() -> None:
    assert run(b"EHLO x\r\nSTARTTLS\r\n", extensions=proto.Extensions(starttls=False)).codes == [250, 502]
    assert run(b"STARTTLS\r\n").codes == [503]
    assert run(b"EHLO x\r\nSTARTTLS\r\n", tls_active=True).codes == [250, 503]


def test_starttls_refused_by_policy_keeps_plaintext_session() -> None:
    conn = greeted()
    t = drive(conn, [EHLO + b"STARTTLS\r\nNOOP\r\n"], respond=lambda e, c: (
        proto.Reply(454, "TLS not available", "4.7.0") if isinstance(e, proto.StartTLS) else accept(e, c)))
    assert t.codes == [250, 454, 250]
    assert conn.state is proto.COMMAND


# ----------------------------------------------------------------- illegal replies


def test_reply_when_none_is_owed_is_local_error() -> None:
    conn = greeted()
    with pytest.raises(proto.LocalProtocolError, match="COMMAND"):
        conn.send(proto.Reply(250, "OK"))


def test_354_without_accepted_recipient_is_local_error() -> None:
    conn = greeted()
    conn.receive_data(EHLO + b"MAIL FROM:<>\r\nRCPT TO:<a@b.example>\r\nDATA\r\n")
    for _ in range(3):
        event = conn.next_event()
        conn.send(proto.Reply(550, "no") if isinstance(event, proto.RcptTo) else accept(event, conn))  # type: ignore[arg-type]
    # The connection answers DATA itself (no valid recipients) ...
    event = conn.next_event()
    assert isinstance(event, proto.ProtocolViolation)
    with pytest.raises(proto.LocalProtocolError, match="requires 503"):
        conn.send(proto.Reply(354, "go ahead"))
    assert conn.state is proto.REPLY  # unchanged


def test_wrong_reply_code_for_event_is_local_error() -> None:
    conn = greeted()
    conn.receive_data(EHLO)
    conn.next_event()
    with pytest.raises(proto.LocalProtocolError, match="354 reply to Ehlo"):
        conn.send(proto.Reply(354, "go"))


def test_auto_reply_code_must_be_kept_but_text_may_change() -> None:
    conn = greeted()
    conn.receive_data(b"FROB\r\n")
    conn.next_event()
    with pytest.raises(proto.LocalProtocolError):
        conn.send(proto.Reply(250, "fine"))
    assert conn.send(proto.Reply(500, "What?", "5.5.1")) == b"500 5.5.1 What?\r\n"


def test_421_is_legal_in_any_open_state() -> None:
    for state_input in (b"NOOP\r\n", b"EHLO x\r\n", ENVELOPE + b"DATA\r\npartial body"):
        conn = greeted()
        drive(conn, [state_input])
        conn.send(proto.Reply(421, "shutting down", "4.3.2"))
        assert conn.state is proto.CLOSING
        with pytest.raises(proto.LocalProtocolError, match="CLOSING"):
            conn.send(proto.Reply(421, "again", "4.3.2"))


def test_reply_to_refused_message_must_be_the_refusal() -> None:
    conn = greeted(limits=proto.Limits(max_message_size=3))
    conn.receive_data(ENVELOPE + b"DATA\r\n")
    for _ in range(4):
        conn.send(accept(conn.next_event(), conn))  # type: ignore[arg-type]
    conn.receive_data(b"too big\r\n.\r\n")
    end = conn.next_event()
    assert isinstance(end, proto.EndOfData) and end.refusal is not None
    with pytest.raises(proto.LocalProtocolError, match="requires 552"):
        conn.send(proto.Reply(250, "OK"))
    assert conn.send(proto.Reply(552, "Too big for us", "5.3.4")) == b"552 5.3.4 Too big for us\r\n"


def test_peer_close_yields_connection_closed() -> None:
    conn = greeted()
    t = drive(conn, [b"NOOP\r\nNOO", b""])
    assert t.events == [proto.Noop(), proto.ConnectionClosed()]
    assert conn.state is proto.CLOSED
    assert conn.next_event() == proto.ConnectionClosed()
    with pytest.raises(proto.LocalProtocolError):
        conn.receive_data(b"more")


def test_peer_close_after_pipelined_commands_delivers_them_first() -> None:
    conn = greeted()
    conn.receive_data(b"NOOP\r\nQUIT\r\n")
    conn.receive_data(b"")
    t = drive(conn, [])
    assert conn.next_event() == proto.Noop()
    conn.send(proto.Reply(250, "OK"))
    assert conn.next_event() == proto.Quit()
    conn.send(proto.Reply(221, "Bye"))
    assert conn.state is proto.CLOSING
    assert t.events == []


def test_invalid_policy_name_is_value_error() -> None:
    with pytest.raises(ValueError, match="bare_line_ending_policy"):
        proto.ServerConnection("x", bare_line_ending_policy="allow")  # type: ignore[arg-type]


def test_set_authenticated_is_reported() -> None:
    conn = greeted()
    conn.set_authenticated("api-key-7")
    assert conn.session.authenticated == "api-key-7"
