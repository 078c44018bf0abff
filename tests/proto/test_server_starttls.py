"""STARTTLS (RFC 3207): plaintext after the command is discarded, the session resets."""

from __future__ import annotations

from helpers import EHLO, HANDSHAKE, drive, greeted

import proto

INJECTED = b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.net>\r\n"


def test_starttls_handoff_and_session_reset() -> None:
    conn = greeted()
    t = drive(conn, [EHLO + b"STARTTLS\r\n"])
    assert conn.state is proto.TLS_HANDOFF
    assert t.output.endswith(b"220 2.0.0 Ready to start TLS\r\n")
    assert conn.next_event() is proto.PAUSED
    assert conn.tls_established() == 0
    assert conn.state is proto.COMMAND
    assert conn.session == proto.SessionFacts(tls=True)
    t = drive(conn, [b"MAIL FROM:<a@b.example>\r\n" + EHLO])
    assert t.codes == [503, 250]  # a new EHLO is required
    assert b"STARTTLS" not in t.output


def test_starttls_plaintext_injection_in_same_read_is_discarded() -> None:
    """CVE-2011-0411: commands pipelined after STARTTLS must not run under TLS."""
    conn = greeted()
    t = drive(conn, [EHLO + b"STARTTLS\r\n" + INJECTED, HANDSHAKE, EHLO + b"MAIL FROM:<good@example.org>\r\n"])
    mails = t.of(proto.MailFrom)
    assert mails == [proto.MailFrom(proto.Address("good", "example.org"))]
    assert not t.of(proto.RcptTo)
    assert conn.session.plaintext_discarded == len(INJECTED)


def test_starttls_plaintext_arriving_during_handoff_is_discarded() -> None:
    conn = greeted()
    drive(conn, [EHLO + b"STARTTLS\r\n"])
    conn.receive_data(INJECTED)  # a driver bug or a race: still never parsed
    assert conn.tls_established() == len(INJECTED)
    assert conn.buffered == 0


def test_starttls_after_pipelined_ehlo_keeps_earlier_commands() -> None:
    t = drive(greeted(), [EHLO + b"NOOP\r\nSTARTTLS\r\n"])
    assert [type(e) for e in t.events] == [proto.Ehlo, proto.Noop, proto.StartTLS]


def test_starttls_resets_authentication_and_transaction() -> None:
    conn = greeted(auth_requires_tls=False)
    conn.set_authenticated("alice")
    drive(conn, [EHLO + b"MAIL FROM:<>\r\nSTARTTLS\r\n", HANDSHAKE])
    assert conn.session.authenticated is None and conn.transaction is None


def test_tls_established_outside_handoff_is_local_error() -> None:
    conn = greeted()
    try:
        conn.tls_established()
    except proto.LocalProtocolError as exc:
        assert "COMMAND" in str(exc)
    else:
        raise AssertionError("no error")


def test_starttls_only_once() -> None:
    conn = greeted()
    t = drive(conn, [EHLO + b"STARTTLS\r\n", HANDSHAKE, EHLO + b"STARTTLS\r\n"])
    assert t.codes[-1] == 503
