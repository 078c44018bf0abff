"""The "use proto as a library" example from proto/README.md, run as a test.

The code below is a verbatim copy; the second test checks the README still holds it.
"""

from __future__ import annotations

import pathlib
import textwrap

EXAMPLE = textwrap.dedent('''\
import proto

# The server side: you own the socket, proto owns the rules.
server = proto.ServerConnection("mx.example", auth_requires_tls=False)
wire = server.send(proto.Reply(220, "mx.example ESMTP"))          # the greeting first
body: list[bytes] = []


def policy(event: proto.Event) -> proto.Reply | None:
    """Your decisions; everything else is answered by proto itself."""
    if isinstance(event, proto.AutoReply):                         # faults, 334s, VRFY...
        return event.reply
    if isinstance(event, (proto.EndOfData, proto.BdatChunk)) and event.refusal:
        return event.refusal                                       # 552 / 550 after the data
    if isinstance(event, (proto.Ehlo, proto.Helo)):
        return proto.Reply(250, "")                                # capabilities appended
    if isinstance(event, proto.DataStart):
        return proto.Reply(354, "End data with <CR><LF>.<CR><LF>")
    if isinstance(event, proto.Quit):
        return proto.Reply(221, "Bye", "2.0.0")
    if isinstance(event, proto.Data):
        body.append(event.data)                                    # no reply owed
        return None
    return proto.Reply(250, "OK", "2.0.0")                         # MAIL, RCPT, end of data...


incoming = [b"EHLO client.example\\r\\nMAIL FROM:<alice@example.org>\\r\\n",
            b"RCPT TO:<bob@example.net>\\r\\nDATA\\r\\n",
            b"Hello Bob,\\r\\n..a line that starts with a dot\\r\\n.\\r\\nQUIT\\r\\n"]
while server.state not in (proto.CLOSING, proto.CLOSED):
    try:
        event = server.next_event()
    except proto.RemoteProtocolError as exc:                       # the peer must go
        wire += server.send(exc.reply_hint or proto.Reply(421, "closing", "4.7.0"))
        break
    if event is proto.NEED_DATA:
        server.receive_data(incoming.pop(0) if incoming else b"")  # stands for recv()
    elif isinstance(event, proto.Event) and (reply := policy(event)) is not None:
        wire += server.send(reply)                                 # stands for sendall()

assert b"".join(body) == b"Hello Bob,\\r\\n.a line that starts with a dot\\r\\n"
assert wire.endswith(b"250 2.0.0 OK\\r\\n221 2.0.0 Bye\\r\\n")

# The client side: commands in, bytes out; replies in, (command, reply) pairs out.
client = proto.ClientConnection()
client.receive_data(b"220 mx.example ESMTP\\r\\n")
assert client.next_event() == proto.ServerReply(None, proto.Reply(220, "mx.example ESMTP"))
out = client.send(proto.Ehlo("relay.example"))
client.receive_data(b"250-mx.example\\r\\n250-PIPELINING\\r\\n250 ENHANCEDSTATUSCODES\\r\\n")
client.next_event()
assert client.capabilities is not None and client.capabilities.pipelining
out = client.send(proto.MailFrom(proto.parse_path("<alice@example.org>")))
out += client.send(proto.RcptTo(proto.parse_mailbox("bob@example.net")))   # pipelined
assert out == b"MAIL FROM:<alice@example.org>\\r\\nRCPT TO:<bob@example.net>\\r\\n"
''')


def test_readme_example_runs() -> None:
    exec(compile(EXAMPLE, "README example", "exec"), {"__name__": "readme_example"})


def test_readme_holds_the_same_example() -> None:
    root = pathlib.Path(__file__).resolve().parents[2]
    readmes = [root / "proto" / "README.md", root / "README.md"]
    texts = [p.read_text() for p in readmes if p.exists()]
    assert any(EXAMPLE in text for text in texts), "README example and test copy differ"
