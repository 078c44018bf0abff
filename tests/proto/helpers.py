"""Shared test helpers: drive a ServerConnection with bytes, link a client and a server.

Everything here is synchronous and mock-free: bytes in, events out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import attrs

import proto

#: Put in a piece list to stand for the TLS handshake after a 220 to STARTTLS.
HANDSHAKE = object()

Responder = Callable[[proto.Event, proto.ServerConnection], "proto.Reply | None"]


def accept(event: proto.Event, conn: proto.ServerConnection) -> proto.Reply | None:
    """A permissive policy: the reply a server that accepts everything would send."""
    if isinstance(event, proto.AutoReply):
        return event.reply
    if isinstance(event, (proto.EndOfData, proto.BdatChunk)):
        return event.refusal or proto.Reply(250, "OK queued", "2.0.0")
    if isinstance(event, (proto.Ehlo, proto.Helo)):
        return proto.Reply(250, "")
    if isinstance(event, proto.StartTLS):
        return proto.Reply(220, "Ready to start TLS", "2.0.0")
    if isinstance(event, proto.AuthCredentials):
        return proto.Reply(235, "Authentication successful", "2.7.0")
    if isinstance(event, proto.DataStart):
        return proto.Reply(354, "End data with <CR><LF>.<CR><LF>")
    if isinstance(event, proto.Quit):
        return proto.Reply(221, "Bye", "2.0.0")
    if isinstance(event, (proto.MailFrom, proto.RcptTo, proto.Rset, proto.Noop)):
        return proto.Reply(250, "OK", "2.0.0")
    return None


@attrs.frozen
class Transcript:
    events: list[proto.Event]
    output: bytes
    #: For ``run``: the unmerged events of both the whole and the bytewise feed.
    raw: list[proto.Event] = attrs.field(factory=list)

    @property
    def codes(self) -> list[int]:
        """Reply codes in the order they were sent (first line of each reply)."""
        return [int(line[:3]) for line in self.output.split(b"\r\n") if line[3:4] == b" "]

    @property
    def body(self) -> bytes:
        return b"".join(e.data for e in self.events if isinstance(e, proto.Data))

    def of(self, kind: type[proto.Event]) -> list[proto.Event]:
        return [e for e in self.events if isinstance(e, kind)]


def greeted(**kwargs: object) -> proto.ServerConnection:
    """A ServerConnection that has sent its 220 greeting."""
    conn = proto.ServerConnection("mx.example", **kwargs)  # type: ignore[arg-type]
    conn.send(proto.Reply(220, "mx.example ESMTP"))
    return conn


def drive(
    conn: proto.ServerConnection,
    pieces: Iterable[object],
    respond: Responder = accept,
) -> Transcript:
    """Feed ``pieces`` one ``receive_data`` each, answering events with ``respond``.

    ``HANDSHAKE`` in ``pieces`` completes a pending STARTTLS. Stops reading when the
    connection leaves the states where it reads.
    """
    events: list[proto.Event] = []
    out = bytearray()
    for piece in pieces:
        if piece is HANDSHAKE:
            assert conn.state is proto.TLS_HANDOFF
            conn.tls_established()
            _pump(conn, events, out, respond)
            continue
        assert isinstance(piece, bytes)
        if conn.state in (proto.CLOSING, proto.ERROR):
            break
        conn.receive_data(piece)
        _pump(conn, events, out, respond)
    return Transcript(events, bytes(out))


def _pump(conn: proto.ServerConnection, events: list[proto.Event], out: bytearray, respond: Responder) -> None:
    while True:
        try:
            event = conn.next_event()
        except proto.RemoteProtocolError as exc:
            assert exc.reply_hint is not None
            out += conn.send(exc.reply_hint)
            return
        if event is proto.NEED_DATA or event is proto.PAUSED:
            return
        assert isinstance(event, proto.Event)
        events.append(event)
        if isinstance(event, proto.ConnectionClosed):
            return
        if conn.state is proto.REPLY:
            reply = respond(event, conn)
            if reply is None:
                return
            out += conn.send(reply)


def merge_data(events: Sequence[proto.Event]) -> list[proto.Event]:
    """Join adjacent Data events: chunk boundaries follow the input and mean nothing.

    The Data of a refused message is dropped: how much of it came out before the
    refusal was known depends on the reads, and the caller throws it away.
    """
    merged: list[proto.Event] = []
    for event in events:
        if isinstance(event, (proto.EndOfData, proto.BdatChunk)) and event.refusal is not None:
            while merged and isinstance(merged[-1], proto.Data):
                merged.pop()
        if isinstance(event, proto.Data) and merged and isinstance(merged[-1], proto.Data):
            merged[-1] = proto.Data(merged[-1].data + event.data)
        elif not (isinstance(event, proto.Data) and not event.data):
            merged.append(event)
    return merged


def run(data: bytes, respond: Responder = accept, **kwargs: object) -> Transcript:
    """Feed ``data`` whole and byte at a time to fresh greeted servers; both must give
    the same events (Data merged) and the same output. Returns the whole-feed one."""
    whole = drive(greeted(**kwargs), [data], respond)
    bytewise = drive(greeted(**kwargs), [data[i : i + 1] for i in range(len(data))], respond)
    assert merge_data(bytewise.events) == merge_data(whole.events)
    assert bytewise.output == whole.output
    return Transcript(merge_data(whole.events), whole.output, whole.events + bytewise.events)


EHLO = b"EHLO client.example\r\n"
ENVELOPE = EHLO + b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\n"


def message(body: bytes) -> bytes:
    """An EHLO, an envelope, DATA, ``body`` as given (terminator included by caller)."""
    return ENVELOPE + b"DATA\r\n" + body


class ConnectionPair:
    """A ClientConnection and a ServerConnection linked in memory (cf. h11's helper).

    ``respond`` plays the server's policy. ``exchange(*commands)`` sends the commands,
    lets the server answer everything, and returns the client's ServerReply events.
    """

    def __init__(
        self,
        respond: Responder = accept,
        *,
        server: proto.ServerConnection | None = None,
        client: proto.ClientConnection | None = None,
    ) -> None:
        self.server = server or proto.ServerConnection("mx.example", auth_requires_tls=False)
        self.client = client or proto.ClientConnection()
        self.respond = respond
        self.server_events: list[proto.Event] = []
        self.wire_to_server = bytearray()
        self._to_client(self.server.send(proto.Reply(220, "mx.example ESMTP")))

    def _to_client(self, data: bytes) -> None:
        self.client.receive_data(data)

    def _to_server(self, data: bytes) -> None:
        self.wire_to_server += data
        self.server.receive_data(data)
        out = bytearray()
        _pump(self.server, self.server_events, out, self.respond)
        self._to_client(bytes(out))

    def send(self, *commands: proto.Event) -> None:
        self._to_server(b"".join(self.client.send(c) for c in commands))

    def replies(self) -> list[proto.ServerReply]:
        got: list[proto.ServerReply] = []
        while True:
            event = self.client.next_event()
            if event is proto.NEED_DATA or event is proto.PAUSED:
                return got
            assert isinstance(event, proto.ServerReply), event
            got.append(event)

    def exchange(self, *commands: proto.Event) -> list[proto.ServerReply]:
        self.send(*commands)
        return self.replies()

    def handshake(self) -> None:
        """Both sides finish STARTTLS as if a TLS handshake had happened."""
        self.client.tls_established()
        self.server.tls_established()
