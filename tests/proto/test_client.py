"""ClientConnection on its own (bytes from a scripted server) and against
ServerConnection through memory (ConnectionPair)."""

from __future__ import annotations

import pytest
from helpers import ConnectionPair, accept

import proto

A = proto.Address
ALICE = A("alice", "example.org")
BOB = A("bob", "example.net")
CAROL = A("carol", "example.net")

EHLO_REPLY = (
    b"250-mx.example greets you\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
    b"250-AUTH=LOGIN\r\n250-AUTH PLAIN LOGIN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n"
)


def ready(reply: bytes = EHLO_REPLY) -> proto.ClientConnection:
    client = proto.ClientConnection()
    client.receive_data(b"220 mx.example ESMTP\r\n")
    assert client.next_event() == proto.ServerReply(None, proto.Reply(220, "mx.example ESMTP"))
    assert client.send(proto.Ehlo("relay.example")) == b"EHLO relay.example\r\n"
    client.receive_data(reply)
    event = client.next_event()
    assert isinstance(event, proto.ServerReply) and event.reply.code == 250
    return client


def test_greeting_and_multiline_reply_parsing() -> None:
    client = proto.ClientConnection()
    assert client.state is proto.GREETING
    client.receive_data(b"220-mx.example ESMTP\r\n220-second line\r")
    assert client.next_event() is proto.NEED_DATA
    client.receive_data(b"\n220 last\r\n")
    assert client.next_event() == proto.ServerReply(None, proto.Reply(220, ["mx.example ESMTP", "second line", "last"]))
    assert client.state is proto.COMMAND
    assert client.next_event() is proto.PAUSED  # nothing outstanding: our move


def test_ehlo_capabilities() -> None:
    caps = ready().capabilities
    assert caps == proto.Capabilities(
        esmtp=True, pipelining=True, size=1000, starttls=True, auth=("LOGIN", "PLAIN"), eightbitmime=True,
        smtputf8=False, chunking=True, enhanced_status_codes=True, keywords=caps.keywords if caps else {},
    )


def test_helo_fallback_after_ehlo_refused() -> None:
    client = proto.ClientConnection()
    client.receive_data(b"220 old.example\r\n")
    client.next_event()
    client.send(proto.Ehlo("relay.example"))
    client.receive_data(b"502 Command not implemented\r\n")
    event = client.next_event()
    assert isinstance(event, proto.ServerReply) and event.reply.code == 502
    assert client.capabilities is None
    assert client.send(proto.Helo("relay.example")) == b"HELO relay.example\r\n"
    client.receive_data(b"250 old.example\r\n")
    client.next_event()
    assert client.capabilities == proto.Capabilities()
    with pytest.raises(proto.LocalProtocolError, match="SIZE"):
        client.send(proto.MailFrom(ALICE, {"SIZE": "10"}))


def test_enhanced_code_parsed_from_reply() -> None:
    client = ready()
    client.send(proto.MailFrom(ALICE))
    client.receive_data(b"250-2.1.0 Sender\r\n250 2.1.0 OK\r\n")
    event = client.next_event()
    assert isinstance(event, proto.ServerReply)
    assert event.reply == proto.Reply(250, ["Sender", "OK"], "2.1.0")


def test_no_pipelining_means_one_command_at_a_time() -> None:
    client = ready(b"250 mx.example\r\n")
    client.send(proto.MailFrom(ALICE))
    with pytest.raises(proto.LocalProtocolError, match="no PIPELINING"):
        client.send(proto.RcptTo(BOB))


def test_pipelining_group_rules() -> None:
    client = ready()
    client.send(proto.MailFrom(ALICE))
    client.send(proto.RcptTo(BOB))
    client.send(proto.DataStart())
    with pytest.raises(proto.LocalProtocolError, match="REPLY"):
        client.send(proto.Noop())  # DATA must be the last command of a group (RFC 2920 3.1)


def test_malformed_reply_is_remote_error() -> None:
    for junk in (b"hello\r\n", b"25 x\r\n", b"250-a\r\n251 b\r\n", b"600 x\r\n"):
        client = proto.ClientConnection()
        client.receive_data(junk)
        with pytest.raises(proto.RemoteProtocolError):
            client.next_event()
        assert client.state is proto.ERROR


def test_overlong_reply_line_is_remote_error() -> None:
    client = proto.ClientConnection()
    client.receive_data(b"220 " + b"x" * 600 + b"\r\n")
    with pytest.raises(proto.RemoteProtocolError, match="512"):
        client.next_event()


def test_unexpected_reply_code_is_remote_error() -> None:
    client = ready()
    client.send(proto.MailFrom(ALICE))
    client.receive_data(b"354 go ahead\r\n")
    with pytest.raises(proto.RemoteProtocolError, match="354"):
        client.next_event()


def test_unsolicited_421_closes() -> None:
    client = ready()
    client.receive_data(b"421 4.4.2 idle timeout\r\n")
    assert client.next_event() == proto.ServerReply(None, proto.Reply(421, "idle timeout", "4.4.2"))
    assert client.state is proto.CLOSING


def test_server_close_gives_connection_closed() -> None:
    client = ready()
    client.send(proto.Noop())
    client.receive_data(b"25")
    client.receive_data(b"")
    assert client.next_event() == proto.ConnectionClosed()
    assert client.state is proto.CLOSED


def test_starttls_discards_injected_response() -> None:
    client = ready()
    client.send(proto.StartTLS())
    client.receive_data(b"220 2.0.0 go\r\n250 injected\r\n")
    event = client.next_event()
    assert isinstance(event, proto.ServerReply) and event.reply.code == 220
    assert client.state is proto.TLS_HANDOFF
    assert client.tls_established() == len(b"250 injected\r\n")
    assert client.capabilities is None and client.tls
    with pytest.raises(proto.LocalProtocolError):
        client.send(proto.StartTLS())


def test_extensions_must_be_offered() -> None:
    client = ready(b"250 mx.example\r\n")
    with pytest.raises(proto.LocalProtocolError, match="STARTTLS"):
        client.send(proto.StartTLS())
    with pytest.raises(proto.LocalProtocolError, match="AUTH"):
        client.send(proto.AuthCredentials("PLAIN", "", "u", "p"))
    with pytest.raises(proto.LocalProtocolError, match="SMTPUTF8"):
        client.send(proto.MailFrom(A("j\u00f6rg", "example.org")))


def test_commands_reject_line_breaks() -> None:
    client = ready()
    with pytest.raises(proto.LocalProtocolError):
        client.send(proto.Ehlo("x\r\nMAIL FROM:<evil@x>"))


# ------------------------------------------------------------------ against the server


def test_full_delivery_with_pipelining_and_per_recipient_results() -> None:
    def respond(event: proto.Event, conn: proto.ServerConnection) -> proto.Reply | None:
        if isinstance(event, proto.RcptTo) and event.forward_path == CAROL:
            return proto.Reply(550, "No such user", "5.1.1")
        return accept(event, conn)

    pair = ConnectionPair(respond)
    assert [r.reply.code for r in pair.replies()] == [220]
    pair.exchange(proto.Ehlo("relay.example"))
    assert pair.client.capabilities is not None and pair.client.capabilities.pipelining
    replies = pair.exchange(proto.MailFrom(ALICE, {"SIZE": "20"}), proto.RcptTo(BOB), proto.RcptTo(CAROL),
                            proto.DataStart())
    assert [r.reply.code for r in replies] == [250, 250, 550, 354]
    assert pair.wire_to_server.count(b"\r\n") == 5  # one write: the group was pipelined
    txn = pair.client.transaction
    assert txn is not None and txn.accepted == (BOB,)
    assert [(a, r.code if r else None) for a, r in txn.recipients] == [(BOB, 250), (CAROL, 550)]
    assert pair.client.state is proto.DATA
    pair.send(proto.Data(b"Subject: hi\n\n.leading dot\r\n"), proto.Data(b"last line"), proto.EndOfData())
    (end,) = pair.replies()
    assert end.reply.code == 250 and pair.client.transaction is None
    body = b"".join(e.data for e in pair.server_events if isinstance(e, proto.Data))
    assert body == b"Subject: hi\r\n\r\n.leading dot\r\nlast line\r\n"
    (quit_reply,) = pair.exchange(proto.Quit())
    assert quit_reply.reply.code == 221
    assert pair.client.state is proto.CLOSING and pair.server.state is proto.CLOSING


def test_smuggling_attempt_through_the_client_is_defused() -> None:
    pair = ConnectionPair()
    pair.replies()
    pair.exchange(proto.Ehlo("relay.example"))
    pair.exchange(proto.MailFrom(ALICE), proto.RcptTo(BOB), proto.DataStart())
    pair.send(proto.Data(b"hi\n.\nMAIL FROM:<evil@x.example>\r\n"), proto.EndOfData())
    assert [r.reply.code for r in pair.replies()] == [250]
    assert len([e for e in pair.server_events if isinstance(e, proto.MailFrom)]) == 1
    (end,) = [e for e in pair.server_events if isinstance(e, proto.EndOfData)]
    assert isinstance(end, proto.EndOfData) and not end.bare_line_endings_seen


def test_bdat_delivery() -> None:
    pair = ConnectionPair()
    pair.replies()
    pair.exchange(proto.Ehlo("relay.example"))
    replies = pair.exchange(proto.MailFrom(ALICE), proto.RcptTo(BOB), proto.Bdat(b"part one\r"),
                            proto.Bdat(b"\npart two\n", last=True))
    assert [r.reply.code for r in replies] == [250, 250, 250, 250]
    body = b"".join(e.data for e in pair.server_events if isinstance(e, proto.Data))
    assert body == b"part one\r\npart two\r\n"
    assert pair.client.transaction is None


def test_bdat_needs_chunking() -> None:
    server = proto.ServerConnection("mx.example", extensions=proto.Extensions(chunking=False))
    pair = ConnectionPair(server=server)
    pair.replies()
    pair.exchange(proto.Ehlo("relay.example"))
    pair.exchange(proto.MailFrom(ALICE), proto.RcptTo(BOB))
    with pytest.raises(proto.LocalProtocolError, match="CHUNKING"):
        pair.client.send(proto.Bdat(b"x", last=True))


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_against_server(mechanism: str) -> None:
    pair = ConnectionPair()
    pair.replies()
    pair.exchange(proto.Ehlo("relay.example"))
    creds = proto.AuthCredentials(mechanism, "", "alice", "s3cret")
    replies = pair.exchange(creds)
    while replies[-1].reply.code == 334:
        assert pair.client.state is proto.AUTH
        replies = pair.exchange(proto.AuthResponse())
    assert replies[-1].reply.code == 235
    assert pair.client.authenticated and pair.server.session.authenticated == "alice"
    assert creds in pair.server_events


def test_auth_plain_long_credentials_use_challenge() -> None:
    pair = ConnectionPair()
    pair.replies()
    pair.exchange(proto.Ehlo("relay.example"))
    (challenge,) = pair.exchange(proto.AuthCredentials("PLAIN", "", "a" * 200, "p" * 250))
    assert challenge.reply.code == 334
    (done,) = pair.exchange(proto.AuthResponse())
    assert done.reply.code == 235


def test_auth_failure_reported() -> None:
    pair = ConnectionPair(lambda e, c: proto.Reply(535, "Authentication credentials invalid", "5.7.8")
                          if isinstance(e, proto.AuthCredentials) else accept(e, c))
    pair.replies()
    pair.exchange(proto.Ehlo("relay.example"))
    (reply,) = pair.exchange(proto.AuthCredentials("PLAIN", "", "alice", "wrong"))
    assert reply.reply == proto.Reply(535, "Authentication credentials invalid", "5.7.8")
    assert not pair.client.authenticated and pair.client.state is proto.COMMAND


def test_starttls_against_server() -> None:
    pair = ConnectionPair()
    pair.replies()
    pair.exchange(proto.Ehlo("relay.example"))
    (reply,) = pair.exchange(proto.StartTLS())
    assert reply.reply.code == 220
    assert pair.client.state is proto.TLS_HANDOFF and pair.server.state is proto.TLS_HANDOFF
    pair.handshake()
    pair.exchange(proto.Ehlo("relay.example"))
    assert pair.client.capabilities is not None and not pair.client.capabilities.starttls
    assert pair.server.session.tls


def test_refused_mail_from_clears_client_transaction() -> None:
    pair = ConnectionPair(lambda e, c: proto.Reply(550, "Sender refused", "5.7.1")
                          if isinstance(e, proto.MailFrom) and e.reverse_path == ALICE else accept(e, c))
    pair.replies()
    pair.exchange(proto.Ehlo("relay.example"))
    replies = pair.exchange(proto.MailFrom(ALICE), proto.RcptTo(BOB))
    assert [r.reply.code for r in replies] == [550, 503]
    assert pair.client.transaction is None
    (ok,) = pair.exchange(proto.MailFrom(None))
    assert ok.reply.code == 250


def test_rset_pipelined_before_mail_keeps_the_new_transaction() -> None:
    """A reused session sends RSET, MAIL, RCPT in one group; RSET's reply must not
    clear the transaction the MAIL after it opened."""
    client = ready()
    client.send(proto.MailFrom(ALICE))
    client.receive_data(b"250 2.1.0 ok\r\n")
    client.next_event()
    out = client.send(proto.Rset()) + client.send(proto.MailFrom(ALICE)) + client.send(proto.RcptTo(BOB))
    assert out == b"RSET\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\n"
    client.receive_data(b"250 2.0.0 reset\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n")
    for _ in range(3):
        assert isinstance(client.next_event(), proto.ServerReply)
    assert client.transaction is not None and [a for a, _ in client.transaction.recipients] == [BOB]
    assert client.send(proto.DataStart()) == b"DATA\r\n"
