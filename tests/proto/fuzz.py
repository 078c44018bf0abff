"""A fuzzing harness for proto: a pure-Python mutational fuzzer, and the entry point
that atheris (coverage-guided) drives.

Strategy: the invariant is h11's (STYLE.md rule 7): whatever bytes the peer sends,
``next_event()`` either returns events or raises ``RemoteProtocolError``. Any other
exception is a crash: ``ValueError`` from building a reply, ``LocalProtocolError``
from ``send()`` of a reply the harness was entitled to send (the event's own reply, a
250 to MAIL, a 354 to DATA, ...), an ``AssertionError`` from the harness's checks (a
bare CR/LF handed on, a buffer over its bound, a reply line over 512 octets, proto
text that is not printable ASCII). The harnesses drive the connections the way the
relay does: bytes arrive in pieces of any size, ``next_event()`` runs until
``NEED_DATA``, every owed event gets a plausible reply — mostly positive, so MAIL,
RCPT, DATA, BDAT and AUTH reach their deep states — and a STARTTLS is handed off with
``tls_established()``.

Inputs (the format atheris mutates and ``fuzz_corpus/`` stores; see ``one_input``)::

    byte 0     target and configuration (bit 7: 0 server, 1 client; see the harnesses)
    byte 1     mood: which replies (server) or commands (client) the harness chooses
    byte 2..   the peer's bytes; HANDSHAKE between two segments stands for the TLS
               handshake (the harness calls tls_established() there if a 220 to
               STARTTLS is pending; bytes before it that follow STARTTLS are dropped)

Everything the harness decides is a function of the input (choices: of the mood and
the event count; piece sizes: of a PRNG seeded with the input's CRC), so a saved
input replays the same way.

The mutational loop (``Fuzzer``) costs less per input than whole sessions: **an input
is one chunk** of a seed session — a command line or a pipelined group, an AUTH line,
a line or piece of a message body, a BDAT chunk, a server reply (group) — fed to a
live connection in one or two pieces and processed until ``NEED_DATA``. Each session
draws a mutation strength (10 to 80 % of its chunks); a mutated chunk gets 1 to 4
stacked byte-level mutations (bit flips, dictionary tokens, runs at the length limits,
other line endings, numbers, splices with other seeds' chunks) or is replaced by
hostile bytes. The connection carries on to the next chunk, so later chunks meet the
state the earlier ones built (in a transaction, in DATA or BDAT, after STARTTLS, after
AUTH). The seeds are hand-written sessions plus sessions recorded by linking the
client harness to the server harness (``record``), each also cut into one chunk per
line (``by_line``). A crash is saved as the whole session so far, in the input format
above; ``replay`` runs it whole, byte at a time and in random pieces (a client-side
crash may need the byte-at-a-time feed: fed whole, a server's later replies arrive
before the client sent the commands they answer, which is itself a protocol error).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import random
import re
import traceback
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import attrs

import proto
from proto._text import MAX_REPLY_TEXT
from proto._writers import MAX_REPLY_LINE, write_reply

__all__ = [
    "CLIENT",
    "CLIENT_SEEDS",
    "CORPUS",
    "DICTIONARY",
    "HANDSHAKE",
    "KNOWN_CRASHERS",
    "SERVER",
    "SERVER_SEEDS",
    "ClientHarness",
    "Crash",
    "Fuzzer",
    "Seed",
    "ServerHarness",
    "Stats",
    "all_seeds",
    "by_line",
    "hostile",
    "mutate",
    "one_input",
    "record",
    "replay",
    "save",
]

#: Stands for the TLS handshake between two segments of an input.
HANDSHAKE = b"\xfe\xfeTLS\xfe\xfe"
#: Where crashing inputs are kept; every file is replayed by ``test_fuzz.py``.
CORPUS = Path(__file__).parent / "fuzz_corpus"

SERVER = 0x00
CLIENT = 0x80


# ------------------------------------------------------------------ configuration

_SERVER_LIMITS = (
    proto.Limits(),
    proto.Limits(max_message_size=300, max_errors=3, max_recipients=2, max_text_line=80),
    proto.Limits(max_command_line=40, max_auth_line=40, max_text_line=10, max_message_size=50, max_errors=1,
                 max_recipients=1),
    proto.Limits(max_errors=30),
)
_NO_EXTENSIONS = proto.Extensions(starttls=False, auth=(), size=False, eightbitmime=False, smtputf8=False,
                                  pipelining=False, chunking=False, enhanced_status_codes=False)
_CLIENT_LIMITS = (
    proto.Limits(),
    proto.Limits(max_reply_line=80, max_reply_lines=4),
    proto.Limits(max_text_line=20, max_command_line=100, max_auth_line=100),
    proto.Limits(max_reply_lines=1000),
)


def _server_kwargs(config: int) -> dict[str, object]:
    """Bits: 0 normalize, 1 accept long lines, 2 implicit TLS, 3 AUTH without TLS,
    4-5 limits, 6 no extensions."""
    return {
        "bare_line_ending_policy": "normalize" if config & 1 else "reject",
        "long_line_policy": "accept" if config & 2 else "reject",
        "tls_active": bool(config & 4),
        "auth_requires_tls": not config & 8,
        "limits": _SERVER_LIMITS[(config >> 4) & 3],
        "extensions": _NO_EXTENSIONS if config & 64 else proto.Extensions(),
    }


def _client_kwargs(config: int) -> dict[str, object]:
    """Bits: 0 split long lines, 1 implicit TLS, 2-3 limits."""
    return {
        "long_line_policy": "split" if config & 1 else "keep",
        "tls_active": bool(config & 2),
        "limits": _CLIENT_LIMITS[(config >> 2) & 3],
    }


def _mix(n: int, mood: int) -> int:
    """A cheap deterministic hash of the event number and the mood."""
    return ((n * 2654435761) ^ (mood * 40503)) >> 7 & 0xFFFF


# ------------------------------------------------------------------ checks


class Crash(Exception):
    """Raised by the fuzzer with the input that broke the invariant."""

    def __init__(self, data: bytes, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.data = data
        self.error = error

    @property
    def signature(self) -> str:
        """Exception type and where it was raised: one entry per distinct bug."""
        frames = traceback.extract_tb(self.error.__traceback__)
        where = next((f for f in reversed(frames) if "/proto/_" in f.filename), frames[-1] if frames else None)
        place = f"{Path(where.filename).name}:{where.lineno}" if where else "?"
        side = "client" if self.data[:1] and self.data[0] & CLIENT else "server"
        return f"{side}: {type(self.error).__name__} at {place}"


def _check_wire_reply(data: bytes) -> None:
    """What a ServerConnection sends: CRLF lines of at most 512 octets."""
    assert data.endswith(b"\r\n"), data[-20:]
    for line in data[:-2].split(b"\r\n"):
        assert len(line) + 2 <= MAX_REPLY_LINE, f"reply line of {len(line) + 2} octets"
        assert b"\r" not in line and b"\n" not in line, line[:80]


def _check_proto_text(reply: proto.Reply) -> None:
    """Reply text proto built (or parsed, client side) is printable ASCII and fits one
    reply line with any enhanced code (RFC 5321 4.2, 4.5.3.1.5)."""
    for line in reply.text:
        assert line.isascii() and line.isprintable(), line[:80]
        assert len(line) <= MAX_REPLY_TEXT, f"reply text of {len(line)} characters"


def _check_body(data: bytes) -> None:
    assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r"), "bare CR or LF handed on"


# ------------------------------------------------------------------ pieces


def _pieces(data: bytes, split: str, rng: random.Random | None) -> Iterator[bytes]:
    if not data:
        return
    if split == "whole":
        yield data
    elif split == "bytes":
        yield from (data[i : i + 1] for i in range(len(data)))
    else:
        assert rng is not None
        i = 0
        while i < len(data):
            n = rng.choice((1, 2, 3, 7, 64, 509, 4096, 1 << 20))
            yield data[i : i + n]
            i += n


# ------------------------------------------------------------------ server side


class ServerHarness:
    """Drives a ServerConnection like relay/smtp/session.py; raises on a crash.

    Replies: the event's own (``AutoReply``, ``ProtocolViolation``, ``AuthRequest``,
    an ``EndOfData`` refusal), else 250/354/220/235/221 — with the mood (byte 1) not
    0, about one reply in eleven is a refusal instead and one in ~100 a 421, and a
    mood of 1 mod 29 makes the greeting a 554.
    """

    def __init__(self, header: bytes, *, record: bool = False) -> None:
        config, self.mood = header[0], header[1]
        self.conn = proto.ServerConnection("mx.example", **_server_kwargs(config))  # type: ignore[arg-type]
        self.n = 0
        self.done = False
        self.handoff = False  # a 220 answered STARTTLS; waiting for handshake()
        #: Everything sent, when recording.
        self.output = bytearray()
        self.record = record
        greeting = _REFUSED if self.mood % 29 == 1 else _GREETING
        self.output += self.conn.send(greeting)

    def feed(self, data: bytes) -> None:
        """Feed one piece and answer what it completes."""
        if data and not self.done:
            self.conn.receive_data(data)  # in TLS_HANDOFF: counted and dropped
            if not self.handoff:
                self.pump()

    def handshake(self) -> None:
        if self.handoff and not self.done:
            self.handoff = False
            self.conn.tls_established()
            self.pump()

    def close(self) -> None:
        self.handshake()
        if not self.done:
            self.conn.receive_data(b"")
            self.pump()
        _ = (self.conn.session, self.conn.transaction)  # the views must not raise either

    def pump(self) -> None:
        conn = self.conn
        next_event, send, respond = conn.next_event, conn.send, self.respond
        while True:
            try:
                event = next_event()
            except proto.RemoteProtocolError as exc:
                hint = exc.reply_hint
                assert conn.state is proto.ERROR and hint is not None and hint.code == 421, (conn.state, hint)
                _check_wire_reply(send(hint))
                self.done = True
                return
            if event is proto.NEED_DATA:
                if conn.buffered:
                    self._check_buffer()
                return
            kind = type(event)
            if kind in _REPLIES:
                # send() refuses a reply nobody is owed: LocalProtocolError, a crash.
                data = send(respond(event, kind))  # type: ignore[arg-type]
                if len(data) > MAX_REPLY_LINE or data.count(b"\n") != 1 or data[-2:] != b"\r\n":
                    _check_wire_reply(data)  # the slow way for multi-line replies
                if self.record:
                    self.output += data
                if conn.state in _STOPPED:
                    self.done = conn.state is proto.CLOSING
                    self.handoff = not self.done
                    return
            elif kind is proto.Data:
                data = event.data  # type: ignore[union-attr]
                assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r"), "bare CR or LF handed on"
            elif kind is proto.ConnectionClosed:
                self.done = True
                return
            else:
                # The relay never sees PAUSED: it answers every event and hands off TLS.
                raise AssertionError(f"{event!r} in {conn.state}")

    def _check_buffer(self) -> None:
        conn, limits = self.conn, self.conn.limits
        state, buffered = conn.state, conn.buffered
        if state is proto.COMMAND:
            assert buffered < limits.max_command_line, buffered
        elif state is proto.AUTH:
            assert buffered < limits.max_auth_line, buffered
        elif state is proto.DATA:
            assert buffered <= 5, buffered
        elif state is proto.BDAT:
            assert buffered == 0, buffered
        else:
            raise AssertionError(f"NEED_DATA in {state}")

    def respond(self, event: proto.Event, kind: type[proto.Event]) -> proto.Reply:
        """The reply to ``event`` (of type ``kind``); see the class docstring."""
        self.n += 1
        roll = ((self.n * 2654435761) ^ (self.mood * 40503)) >> 7 & 0xFFFF if self.mood else 1  # _mix, inline
        if kind is proto.ProtocolViolation or kind is proto.AutoReply or kind is proto.AuthRequest:
            assert isinstance(event, proto.AutoReply)
            reply = event.reply
            for line in reply.text:
                if not (len(line) <= MAX_REPLY_TEXT and line.isascii() and line.isprintable()):
                    _check_proto_text(reply)  # raises, saying why
            if kind is proto.AuthRequest and roll % 11 == 0:
                return _AUTH_FAILED
            if roll % 7 == 0:  # the caller may change the text, not the code
                return proto.Reply(reply.code, "changed text", reply.enhanced)
            return reply
        if roll % 97 == 0:
            return _SHUTDOWN
        if kind is proto.EndOfData or kind is proto.BdatChunk:
            assert isinstance(event, (proto.EndOfData, proto.BdatChunk))
            if event.refusal is not None:
                _check_proto_text(event.refusal)
                return event.refusal
        replies = _REPLIES[kind]
        return replies[roll % 11 == 0] if roll % 2 else replies[2 if roll % 11 == 0 else 0]


_GREETING = proto.Reply(220, "mx.example ESMTP")
_REFUSED = proto.Reply(554, "mx.example No service")
_AUTH_FAILED = proto.Reply(535, "Authentication credentials invalid", "5.7.8")
_SHUTDOWN = proto.Reply(421, "mx.example Service not available", "4.3.0")
#: The server harness's replies by event type: (accept, refuse, accept or refuse, ...).
#: ``respond`` picks [0] or [1] on odd rolls, [0] or [2] on even ones.
_REPLIES: dict[type[proto.Event], tuple[proto.Reply, ...]] = {
    proto.EndOfData: (proto.Reply(250, "OK queued", "2.0.0"), proto.Reply(452, "No space", "4.3.1"),
                      proto.Reply(554, "Rejected", "5.7.1")),
    proto.BdatChunk: (proto.Reply(250, "OK", "2.0.0"), proto.Reply(452, "No space", "4.3.1"),
                      proto.Reply(554, "Rejected", "5.7.1")),
    proto.Ehlo: (proto.Reply(250, ""), proto.Reply(502, "EHLO not today", "5.5.1"),
                 proto.Reply(250, "mx.example Hello")),
    proto.Helo: (proto.Reply(250, "mx.example"), proto.Reply(250, ""), proto.Reply(501, "No")),
    proto.StartTLS: (proto.Reply(220, "Go ahead", "2.0.0"), proto.Reply(454, "TLS not available", "4.7.0"),
                     proto.Reply(220, "")),
    proto.AuthCredentials: (proto.Reply(235, "Authentication successful", "2.7.0"), _AUTH_FAILED,
                            proto.Reply(454, "Temporary authentication failure", "4.7.0")),
    proto.MailFrom: (proto.Reply(250, "OK", "2.1.0"), proto.Reply(550, "Sender refused", "5.7.1"),
                     proto.Reply(451, "Try later", "4.3.0")),
    proto.RcptTo: (proto.Reply(250, "OK", "2.1.5"), proto.Reply(550, "No such user", "5.1.1"),
                   proto.Reply(452, "Too many recipients", "4.5.3")),
    proto.DataStart: (proto.Reply(354, "Go ahead"), proto.Reply(451, "Try later", "4.3.0"),
                      proto.Reply(554, "No valid recipients", "5.5.1")),
    proto.Rset: (proto.Reply(250, "OK", "2.0.0"),) * 3,
    proto.Noop: (proto.Reply(250, "OK", "2.0.0"),) * 3,
    proto.Quit: (proto.Reply(221, "Bye", "2.0.0"),) * 3,
    # The connection names these replies itself.
    proto.ProtocolViolation: (),
    proto.AutoReply: (),
    proto.AuthRequest: (),
}
_STOPPED = (proto.CLOSING, proto.TLS_HANDOFF)


# ------------------------------------------------------------------ client side

_ALICE = proto.Address("alice", "example.org")
_BOB = proto.Address("bob", "example.net")
_CAROL = proto.Address("carol", "example.net")
_JOERG = proto.Address("j\u00f6rg", "b\u00fccher.example")
#: A realistic message: headers, MIME parts, quoted-printable, an HTML line over 998
#: octets (as HTML generators write them), dots at line starts, 8-bit text.
_MIME = (
    b"Received: from client.example (client.example [192.0.2.7])\r\n\tby mx.example with ESMTPSA\r\n"
    b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
    b"Message-ID: <1234@example.org>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Hello Bob,=\r\n\r\n.a line that starts with a dot\r\n..two dots\r\n.\r\ncaf\xc3\xa9 cr\xc3\xa8me\r\n"
    b"From the start of a line\r\n\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n<html><body>"
    + b"<p style=\"margin:0\">word</p>" * 40
    + b"</body></html>\r\n--b1--\r\n"
)
#: Message bodies the client harness sends, in pieces: dots at line starts and at the
#: split points of long lines, bare line endings, CRs at piece ends.
_BODIES: tuple[tuple[bytes, ...], ...] = (
    (b"Subject: hi\r\n\r\nhello\r\n",),
    (_MIME[:700], _MIME[700:]),
    (b".leading dot\r\n..two\r\n.", b"\r\n.\r\nnot the end\n.\n"),
    (b"x" * 997 + b"\r\n" + b"y" * 998 + b"\r\n" + b"z" * 999 + b"\r\n",),
    (b"a" * 998, b".dot after 998", b"\r", b"\n", b"b" * 3000),
    (b"c" * 997 + b"\xc3\xa9" + b"d" * 10 + b"\r\n",),
    (b"line\r", b"\r\n", b"\n.\r", b"", b"tail"),
    (b"", b"\x00\xff\r\n.\r\n"),
)


class ClientHarness:
    """Drives a ClientConnection like relay/worker/providers/smtp.py; raises on a crash.

    On each ``PAUSED`` (our move) it sends what the documented rules allow: EHLO (HELO
    after a refused EHLO), STARTTLS and AUTH when offered, a transaction — pipelined
    when PIPELINING is offered, sometimes with an RSET and a second MAIL inside the
    group — ended by DATA or BDAT, RSET when no recipient was accepted, and QUIT.
    ``LocalProtocolError`` from any of those sends is a crash. The body it writes is
    checked: dot-stuffed, CRLF only, nothing lost, lines split when asked.
    """

    def __init__(self, header: bytes) -> None:
        config, self.mood = header[0], header[1]
        kwargs = _client_kwargs(config)
        self.conn = proto.ClientConnection(**kwargs)  # type: ignore[arg-type]
        self.split = kwargs["long_line_policy"] == "split"
        self.limits = self.conn.limits
        self.n = 0
        self.moves = 0
        self.done = False
        self.ehlo_refused = False
        self.tried_tls = False
        self.tried_auth = False
        self.messages = 0
        #: What the client wrote (bounded), for recording seeds.
        self.sent = bytearray()

    def feed(self, data: bytes) -> None:
        """Feed one piece and answer what it completes."""
        if data and not self.done:
            self.conn.receive_data(data)
            if self.conn.state is not proto.TLS_HANDOFF:
                self.pump()

    def handshake(self) -> None:
        if not self.done and self.conn.state is proto.TLS_HANDOFF:
            self.conn.tls_established()
            self.pump()

    def close(self) -> None:
        self.handshake()
        if not self.done:
            self.conn.receive_data(b"")
            self.pump()

    def pump(self) -> None:
        conn = self.conn
        while not self.done:
            try:
                event = conn.next_event()
            except proto.RemoteProtocolError as exc:
                assert conn.state is proto.ERROR, conn.state
                assert exc.reply_hint is None or isinstance(exc.reply_hint, proto.Reply)
                self.done = True
                return
            if event is proto.NEED_DATA:
                assert conn.outstanding, "NEED_DATA with nothing outstanding"
                return
            if isinstance(event, proto.ServerReply):
                _check_proto_text(event.reply)
                _check_wire_reply(write_reply(event.reply, enhanced=True))  # can be passed on
                if isinstance(event.command, proto.Ehlo) and not event.reply.is_positive:
                    self.ehlo_refused = True
            if isinstance(event, proto.ConnectionClosed) or conn.state is proto.CLOSING:
                self.done = True
                return
            if isinstance(event, proto.ServerReply):
                continue
            assert event is proto.PAUSED, event
            if conn.state is proto.TLS_HANDOFF:
                return
            self.move()

    def _send(self, *commands: proto.Event) -> bytes:
        data = b"".join([self.conn.send(c) for c in commands])
        if len(self.sent) < 65536:
            self.sent += data
        return data

    def move(self) -> None:
        """Our move: send what is legal now (see the class docstring)."""
        conn = self.conn
        self.moves += 1
        self.n += 1
        roll = _mix(self.n, self.mood)
        state = conn.state
        if state is proto.AUTH:
            self._send(proto.AuthResponse())
            return
        if state is proto.DATA:
            self._write_body(roll)
            return
        assert state is proto.COMMAND and not conn.outstanding, (state, conn.outstanding)
        caps = conn.capabilities
        txn = conn.transaction
        if self.moves > 40 or self.messages >= 3:
            self._send(proto.Quit())
        elif caps is None:
            self._send(proto.Helo("relay.example") if self.ehlo_refused else proto.Ehlo("relay.example"))
        elif caps.starttls and not conn.tls and not self.tried_tls and roll % 4:
            self.tried_tls = True
            self._send(proto.StartTLS())
        elif caps.auth and not conn.authenticated and not self.tried_auth and txn is None and roll % 5:
            self.tried_auth = True
            mechanisms = [m for m in ("PLAIN", "LOGIN") if m in caps.auth]
            if mechanisms:
                # Long PLAIN credentials get a 334 first; they must fit max_auth_line.
                user = "a" * 300 if roll % 3 == 0 and self.limits.max_auth_line > 500 else "alice"
                self._send(proto.AuthCredentials(mechanisms[roll % len(mechanisms)], "", user, "s3cret"))
            else:
                self._send(proto.Noop())
        elif txn is None:
            self._transaction(caps, roll)
        elif not txn.recipients:
            self._send(proto.RcptTo(_BOB))
        elif not txn.accepted:
            self._send(proto.Rset())
        elif caps.chunking and roll % 3 == 0:
            self._bdat(caps.pipelining, roll)
        elif roll % 13 == 0:
            self._send(proto.Noop())
        else:
            self._send(proto.DataStart())

    def _transaction(self, caps: proto.Capabilities, roll: int) -> None:
        self.messages += 1
        utf8 = caps.smtputf8 and roll % 5 == 0
        params: dict[str, str | None] = {}
        if caps.size is not None and roll % 2:
            params["SIZE"] = "100"
        if caps.eightbitmime and roll % 3:
            params["BODY"] = "8BITMIME"
        if utf8:
            params["SMTPUTF8"] = None
        mail = proto.MailFrom(_JOERG if utf8 else _ALICE, params)
        if not caps.pipelining:
            self._send(mail)
            return
        group: list[proto.Event] = [mail, proto.RcptTo(_BOB)]
        if roll % 4 == 0:
            group.append(proto.RcptTo(_CAROL))
        if roll % 6 == 0:  # change of mind inside the group: RSET, a new MAIL
            group += [proto.Rset(), proto.MailFrom(_ALICE), proto.RcptTo(_CAROL)]
        if caps.chunking and roll % 3 == 0:
            self._send(*group)
            self._bdat(True, roll)
            return
        self._send(*group, proto.DataStart())

    def _bdat(self, pipelining: bool, roll: int) -> None:
        pieces = _BODIES[roll % len(_BODIES)]
        chunks = [proto.Bdat(p) for p in pieces] + [proto.Bdat(b"", last=True)]
        if not pipelining:
            chunks = [proto.Bdat(b"".join(pieces), last=True)]
        wire = self._send(*chunks)
        self._check_bdat(wire, b"".join(pieces))

    def _write_body(self, roll: int) -> None:
        pieces = _BODIES[roll % len(_BODIES)]
        wire = self._send(*(proto.Data(p) for p in pieces), proto.EndOfData())
        self._check_data(wire, b"".join(pieces))

    def _check_lines(self, text: bytes) -> None:
        _check_body(text)
        if self.split:
            longest = max(map(len, text.split(b"\r\n")))
            assert longest <= self.limits.max_text_line - 2, f"line of {longest} octets after the split"

    def _check_data(self, wire: bytes, body: bytes) -> None:
        framed = b"\r\n" + wire
        end = framed.find(b"\r\n.\r\n")
        assert end == len(framed) - 5, "the body ends the message early"
        unstuffed = framed[: end + 2].replace(b"\r\n.", b"\r\n")[2:]
        self._check_lines(unstuffed)
        assert unstuffed.replace(b"\r\n", b"") == body.replace(b"\r", b"").replace(b"\n", b""), "content changed"

    def _check_bdat(self, wire: bytes, body: bytes) -> None:
        content = bytearray()
        rest = wire
        while rest:
            line, _, rest = rest.partition(b"\r\n")
            words = line.split(b" ")
            assert words[0] == b"BDAT", line
            size = int(words[1])
            content += rest[:size]
            rest = rest[size:]
        self._check_lines(bytes(content))
        expected = body.replace(b"\r", b"").replace(b"\n", b"")
        assert bytes(content).replace(b"\r\n", b"") == expected, "content changed"


# ------------------------------------------------------------------ one input

Harness = ServerHarness | ClientHarness


def _harness(header: bytes) -> Harness:
    return ClientHarness(header) if header[0] & CLIENT else ServerHarness(header)


def one_input(data: bytes, split: str = "random") -> None:
    """Run one input (format in the module docstring); raise on a crash.

    Args:
        data: The input.
        split: How each segment is fed: ``"random"`` (piece sizes from a PRNG seeded
            with the input's CRC-32), ``"whole"``, or ``"bytes"`` (one octet each).

    Raises:
        Exception: Anything but ``RemoteProtocolError`` out of proto, or a failed
            harness check (``AssertionError``): a crash.
    """
    if len(data) < 2:
        return
    harness = _harness(data[:2])
    rng = random.Random(zlib.crc32(data)) if split == "random" else None
    for i, segment in enumerate(data[2:].split(HANDSHAKE)):
        if i:
            harness.handshake()
        for piece in _pieces(segment, split, rng):
            harness.feed(piece)
    harness.close()


def replay(data: bytes) -> None:
    """Run ``data`` fed whole, byte at a time and in random pieces; raise on a crash."""
    for split in ("whole", "bytes", "random"):
        one_input(data, split)


# ------------------------------------------------------------------ seeds

_PLAIN = base64.b64encode(b"\0alice\0s3cret")
_EHLO = b"EHLO client.example\r\n"
_MAIL = b"MAIL FROM:<alice@example.org>\r\n"
_RCPT = b"RCPT TO:<bob@example.net>\r\n"


@attrs.frozen
class Seed:
    """A seed session: the header (target, configuration, mood) and its chunks; a
    ``HANDSHAKE`` chunk stands for the TLS handshake."""

    header: bytes
    chunks: tuple[bytes, ...]

    @property
    def data(self) -> bytes:
        """The seed as one input (``one_input`` format)."""
        return self.header + b"".join(self.chunks)


def _server(config: int, *chunks: bytes, mood: int = 0) -> Seed:
    return Seed(bytes((SERVER | config, mood)), chunks)


def _client(config: int, *chunks: bytes, mood: int = 0) -> Seed:
    return Seed(bytes((CLIENT | config, mood)), chunks)


SERVER_SEEDS: tuple[Seed, ...] = (
    # Submission: STARTTLS, AUTH PLAIN, a message with dot-stuffing, QUIT.
    _server(0, _EHLO, b"STARTTLS\r\n", HANDSHAKE, _EHLO, b"AUTH PLAIN " + _PLAIN + b"\r\n",
            b"MAIL FROM:<alice@example.org> SIZE=200 BODY=8BITMIME\r\n", _RCPT,
            b"RCPT TO:<carol@[192.0.2.7]>\r\n", b"DATA\r\n", b"Subject: hi\r\n\r\n..leading dot\r\n",
            b"body\r\n.\r\n", b"QUIT\r\n"),
    # Everything pipelined, two messages, DATA then BDAT.
    _server(8, _EHLO + b"AUTH PLAIN " + _PLAIN + b"\r\n" + _MAIL + _RCPT + b"RCPT TO:<postmaster>\r\nDATA\r\n",
            b"line one\r\n.\r\n" + _MAIL + _RCPT + b"BDAT 10\r\n0123456789",
            b"BDAT 7 LAST\r\nabc\r\nde", b"RSET\r\nNOOP\r\nQUIT\r\n", mood=3),
    # AUTH LOGIN step by step, a cancelled AUTH, AUTH PLAIN with a challenge.
    _server(8, _EHLO, b"AUTH LOGIN\r\n", b"*\r\n", b"AUTH LOGIN YWxpY2U=\r\n", b"czNjcmV0\r\n", b"RSET\r\n",
            mood=5),
    _server(4, _EHLO, b"AUTH PLAIN\r\n", _PLAIN + b"\r\n", b"AUTH LOGIN\r\n", b"YWxpY2U=\r\n", b"czNjcmV0\r\n"),
    # BDAT: chunks, a CRLF split across chunks, a zero LAST chunk, then more commands.
    _server(1, _EHLO, _MAIL, _RCPT, b"BDAT 7\r\nhello\r\n", b"BDAT 6\r\nworld\r", b"BDAT 0 LAST\r\n",
            b"VRFY bob\r\n", b"HELP\r\n", b"EXPN list\r\n", b"QUIT\r\n"),
    # SMTPUTF8, address literals, source routes, quoted local parts.
    _server(0, _EHLO, "MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\n".encode(),
            "RCPT TO:<ü@例え.jp>\r\n".encode(), b"RCPT TO:<\"john doe\"@[IPv6:2001:db8::1]>\r\n",
            b"RCPT TO:<@a.example,@b.example:c@d.example>\r\n", b"DATA\r\n", "caf\u00e9\r\n.\r\n".encode(), mood=2),
    _server(0, _EHLO, b"MAIL FROM:<a@[127.0.0.1]> BODY=7BIT SIZE=5\r\n", b"RCPT TO:<b@[tag:foo]>\r\n",
            b"MAIL FROM:<>\r\n", b"RSET\r\n", b"MAIL FROM:<>\r\n", b"RCPT TO:<b@example.net> NOTIFY=NEVER\r\n"),
    # HELO: no extensions, parameters refused.
    _server(64, b"HELO client.example\r\n", b"MAIL FROM:<a@b.example> SIZE=10\r\n", _MAIL, _RCPT, b"DATA\r\n",
            b"x\r\n.\r\n", b"BDAT 1 LAST\r\nx", b"STARTTLS\r\n", b"AUTH PLAIN\r\n"),
    # Long lines in the body at and around the limits; under both policies.
    _server(2, _EHLO, _MAIL, _RCPT, b"DATA\r\n", b"a" * 997 + b"\r\n", b"b" * 998 + b"\r\n",
            b"c" * 999 + b"\r\n", b"d" * 3000 + b"\r\n.\r\n", _MAIL, _RCPT, b"BDAT 1001 LAST\r\n" + b"e" * 1001),
    _server(0, _EHLO, _MAIL, _RCPT, b"DATA\r\n", b"f" * 2000, b"\r\n.\r\n", b"NOOP\r\n"),
    # Smuggling sequences; bare CR/LF; under both policies.
    _server(0, _EHLO, _MAIL, _RCPT, b"DATA\r\n", b"x\n.\nMAIL FROM:<evil@x.example>\r\n", b"\r.\r\r\n.\r\r\n",
            b"\r\n.\r\n", b"QUIT\r\n"),
    _server(1, _EHLO, _MAIL, _RCPT, b"DATA\r\n", b"a\rb\nc\r", b"\r\n.\r", b"\n", b"\r\n.\r\n"),
    # STARTTLS with injected commands after it, and plaintext arriving during the handoff.
    _server(0, _EHLO, b"STARTTLS\r\n" + _MAIL + _RCPT, b"RCPT TO:<x@y.example>\r\n", HANDSHAKE, _MAIL, _EHLO,
            _MAIL),
    # Hostile command lines: NUL, bare CR/LF, control characters, overlong, bad UTF-8.
    _server(48, b"EHLO \x00x\r\n", b"NOOP\nNOOP\r\n", b"NOOP\rRSET\r\n", b"HELO x\x13y\r\n",
            b"MAIL FROM:<a\x7f@b.example>\r\n", b"NOOP " + b"x" * 600 + b"\r\n", b"\xff\xfe\xc3\r\n",
            b"RCPT TO:<\xed\xa0\x80@x>\r\n", b"AUTH\r\n", b"BDAT\r\n", b"BDAT x LAST\r\n", b"DATA x\r\n"),
    _server(0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    _server(0, b"EHLO early\r\n", b"MAIL FROM:<a@b.example> SMTPUTF8" + b"X" * 470 + b"\r\n",
            b"MAIL FROM:<a@[127.0.0\x13.1]>\r\n", b"MAIL FROM:<a@b.example> " + b"K=v " * 100 + b"\r\n"),
)

_EHLO_REPLY = (b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
               b"250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n")
_EHLO_TLS = (b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
             b"250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n")

CLIENT_SEEDS: tuple[Seed, ...] = (
    _client(0, b"220 mx.example ESMTP\r\n", _EHLO_REPLY, b"220 2.0.0 go ahead\r\n", HANDSHAKE, _EHLO_TLS,
            b"235 2.7.0 ok\r\n", b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n", b"250 2.0.0 queued\r\n",
            b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n", b"250 2.0.0 queued\r\n", b"221 2.0.0 bye\r\n"),
    _client(0, b"220 mx.example\r\n", b"250-mx.example\r\n250 AUTH=LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n",
            b"334 UGFzc3dvcmQ6\r\n", b"334 more?\r\n", b"501 cancelled\r\n", b"250 ok\r\n", b"250 ok\r\n",
            b"354 go\r\n", b"250 ok\r\n", b"221 bye\r\n", mood=7),
    _client(1, b"220-mx.example\r\n220 second line\r\n", b"502 no EHLO\r\n", b"250 old.example\r\n",
            b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n", b"221 bye\r\n", mood=1),
    _client(3, b"220 mx.example\r\n", b"250-mx.example\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE\r\n",
            b"250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n250 ok\r\n250 ok\r\n",
            b"250 ok\r\n250 ok\r\n", b"421 4.4.2 idle\r\n", mood=9),
    _client(0, b"220 \xff\xfe caf\xc3\xa9 \x00\r\n", b"250-\x13mx\r\n250 SIZE \xc2\xb2\r\n", b"250 ok\r\n",
            b"250 " + b"\xff" * 500 + b"\r\n", b"354 go\r\n", b"250\r\n", b"554-5.0.0 a\r\n554 5.0.0 b\r\n"),
)


def record(client_header: bytes, server_header: bytes) -> tuple[Seed, Seed]:
    """Link a ClientHarness and a ServerHarness in memory and record both directions.

    Returns:
        ``(client seed, server seed)``: the server's bytes as the client harness
        (with ``client_header``) needs them, and the client's bytes as the server
        harness (with ``server_header``) needs them, one chunk per write, so that
        unmutated they run whole sessions: TLS, AUTH, pipelined transactions, DATA
        and BDAT bodies with long lines and dots.
    """
    client = ClientHarness(client_header)
    server = ServerHarness(server_header, record=True)
    to_client: list[bytes] = []
    to_server: list[bytes] = []
    seen = 0
    for _ in range(200):
        out = bytes(server.output[seen:])
        seen = len(server.output)
        if out:
            to_client.append(out)
            client.feed(out)
        sent = bytes(client.sent)
        client.sent.clear()
        if sent:
            to_server.append(sent)
            server.feed(sent)
        if client.conn.state is proto.TLS_HANDOFF and server.conn.state is proto.TLS_HANDOFF:
            to_client.append(HANDSHAKE)
            to_server.append(HANDSHAKE)
            server.handshake()
            client.handshake()
        elif not out and not sent:
            break
    return Seed(client_header, tuple(to_client)), Seed(server_header, tuple(to_server))


#: (client header, server header) pairs whose recorded sessions are seeds.
_RECORDED = (
    (b"\x80\x00", b"\x00\x00"),  # STARTTLS, AUTH, pipelined MAIL/RCPT, DATA, BDAT
    (b"\x80\x06", b"\x08\x00"),
    (b"\x80\x03", b"\x08\x00"),
    (b"\x81\x0c", b"\x0a\x00"),  # split long lines; the server accepts them
    (b"\x81\x15", b"\x00\x00"),
    (b"\x89\x00", b"\x08\x00"),  # split at 18 octets (max_text_line=20)
    (b"\x80\x01", b"\x09\x02"),  # the server refuses some
    (b"\x80\x2a", b"\x00\x05"),
    (b"\x80\x07", b"\x40\x00"),  # no extensions: one command at a time, no params
    (b"\x82\x00", b"\x0c\x00"),  # implicit TLS on both sides
)


def by_line(seed: Seed) -> Seed:
    """The same session with each line its own chunk: pipelined groups and bodies are
    cut at every LF (a BDAT command and its octets too), so an input is one line."""
    chunks: list[bytes] = []
    for chunk in seed.chunks:
        if chunk == HANDSHAKE:
            chunks.append(chunk)
        else:
            chunks += chunk.splitlines(keepends=True)
    return Seed(seed.header, tuple(chunks))


@functools.cache
def all_seeds() -> tuple[Seed, ...]:
    """The hand-written seeds and the recorded ones, each also cut by line."""
    recorded = [seed for pair in (record(c, s) for c, s in _RECORDED) for seed in pair]
    whole = SERVER_SEEDS + CLIENT_SEEDS + tuple(recorded)
    return whole + tuple(by_line(seed) for seed in whole)


KNOWN_CRASHERS: dict[str, bytes] = {
    # A control character inside an address literal was echoed in a 501's text and the
    # Reply validator raised ValueError out of next_event().
    "control-char-in-address-literal": b"\x00\x00EHLO x\r\nMAIL FROM:<a@[127.0.0\x13.1]>\r\n",
    # A 480-octet parameter echoed in a 555 made a reply line over 512 octets, and
    # send() of the connection's own reply raised LocalProtocolError.
    "overlong-parameter-echo": b"\x00\x00EHLO x\r\nMAIL FROM:<a@a.example> SMTPUTF8" + b"X" * 470 + b"\r\n",
}

# ------------------------------------------------------------------ mutation

#: Tokens the mutator inserts (and the atheris dictionary holds).
DICTIONARY: tuple[bytes, ...] = (
    b"\r\n", b"\n", b"\r", b"\r\n.\r\n", b"\r\n.", b"\n.\n", b"\r.\r", b".", b"..", b"\x00", b" ", b"<", b">",
    b"@", b"[", b"]", b"\"", b"\\", b":", b",", b"=", b"*", b"-", b"EHLO ", b"HELO ", b"MAIL FROM:", b"RCPT TO:",
    b"DATA", b"BDAT ", b" LAST", b"RSET", b"NOOP", b"QUIT", b"VRFY ", b"HELP", b"STARTTLS", b"AUTH PLAIN ",
    b"AUTH LOGIN", b"AUTH CRAM-MD5", b"SIZE=", b"BODY=8BITMIME", b"BODY=7BIT", b" SMTPUTF8", b"<>",
    b"<postmaster>", b"[IPv6:", b"[127.0.0.1]", b"@a,@b:", b"GET / HTTP/1.1", b"250-", b"250 ", b"220 ",
    b"334 ", b"354 ", b"421 ", b"550 ", b"2.0.0 ", b"5.1.1 ", b"PIPELINING", b"CHUNKING", b"AUTH=LOGIN",
    b"SIZE 10", b"ENHANCEDSTATUSCODES", _PLAIN, b"YWxpY2U=", b"=", b"\xc3\xa9", b"\xe2\x80\xa8", b"\xc2\xb2",
    b"\xd9\xa1", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x13", b"\x7f", b"\t", b"\x1b[0m",
)
_INTERESTING = b"\x00\r\n.\x13\x7f\x80\xff <>@[]\"\\=:-*\t\xc3\xa9"
_SIZES = (1, 2, 3, 4, 5, 63, 64, 65, 255, 256, 257, 509, 510, 511, 512, 513, 996, 997, 998, 999, 1000, 1001,
          1002, 12287, 12288, 12289)
_NUMBERS = (b"0", b"1", b"2", b"9", b"10", b"99", b"100", b"255", b"256", b"511", b"512", b"513", b"998",
            b"999", b"1000", b"1001", b"99999999999999999999", b"999999999999999999999", b"-1", b"+1", b"\xd9\xa1")


def _mutate_once(data: bytes, rng: random.Random, other: Callable[[], bytes]) -> bytes:
    # rng.random() and arithmetic rather than randrange()/choice(): those are Python
    # functions, and function calls are what a coverage tracer makes slow.
    rand = rng.random
    size = len(data)
    pos = int(rand() * (size + 1))
    op = int(rand() * 13)
    if op == 0 and size:  # flip a bit
        i = int(rand() * size)
        return data[:i] + bytes((data[i] ^ (1 << int(rand() * 8)),)) + data[i + 1 :]
    if op == 1 and size:  # an interesting byte
        i = int(rand() * size)
        return data[:i] + _INTERESTING[int(rand() * len(_INTERESTING)) :][:1] + data[i + 1 :]
    if op in (2, 3):  # a token
        return data[:pos] + DICTIONARY[int(rand() * len(DICTIONARY))] + data[pos:]
    if op == 4 and size:  # delete a run
        return data[:pos] + data[pos + (1, 1, 2, 4, 16, size)[int(rand() * 6)] :]
    if op == 5 and size:  # duplicate a run
        start = int(rand() * size)
        run = data[start : start + (1, 4, 16, 64, size)[int(rand() * 5)]]
        return data[:pos] + run * (1, 2, 8)[int(rand() * 3)] + data[pos:]
    if op == 6:  # a long run, at and around the limits
        octet = b"xX.\r\n\x00 "[int(rand() * 7) :][:1]
        return data[:pos] + octet * _SIZES[int(rand() * len(_SIZES))] + data[pos:]
    if op == 7:  # random bytes
        return data[:pos] + rng.randbytes(1 + int(rand() * 12)) + data[pos:]
    if op == 8:  # splice with another chunk
        piece = other()
        cut = int(rand() * (len(piece) + 1))
        return data[:pos] + piece[cut:] if rand() < 0.5 else piece[:cut] + data[pos:]
    if op == 9 and b"\r\n" in data:  # another line ending
        ending = (b"\n", b"\r", b"\r\r\n", b"\n\r", b"\r\n\r\n")[int(rand() * 5)]
        return data.replace(b"\r\n", ending, 1 + int(rand() * 3))
    if op == 10:  # numbers: BDAT sizes, SIZE=, reply codes
        number = _NUMBERS[int(rand() * len(_NUMBERS))]
        match = _DIGITS.search(data, pos) or _DIGITS.search(data)
        if match is None:
            return data + number
        return data[: match.start()] + number + data[match.end() :]
    if op == 11 and size:  # truncate
        return data[:pos]
    if op == 12 and size:  # case
        return data[:pos] + data[pos:].swapcase() if rand() < 0.5 else data.lower()
    return data + DICTIONARY[int(rand() * len(DICTIONARY))]


def mutate(data: bytes, rng: random.Random, other: Callable[[], bytes]) -> bytes:
    """Apply 1 to 4 stacked mutations (``other`` supplies chunks to splice with)."""
    for _ in range((1, 1, 1, 2, 2, 3, 4)[int(rng.random() * 7)]):
        data = _mutate_once(data, rng, other)
    return data


def hostile(rng: random.Random) -> bytes:
    """A chunk of hostile bytes: controls, bare line ends, overlong runs, bad UTF-8."""
    rand = rng.random
    kind = int(rand() * 5)
    if kind == 0:
        return rng.randbytes(1 + int(rand() * 64))
    if kind == 1:
        return rng.randbytes(1 + int(rand() * 32)).translate(_HOSTILE)
    if kind == 2:
        return b"x" * _SIZES[int(rand() * len(_SIZES))] + (b"\r\n", b"\n", b"", b"\r")[int(rand() * 4)]
    if kind == 3:
        return b"".join(_GARBAGE[int(rand() * len(_GARBAGE))] for _ in range(1 + int(rand() * 10))) + b"\r\n"
    return b"".join(DICTIONARY[int(rand() * len(DICTIONARY))] for _ in range(1 + int(rand() * 8)))


_DIGITS = re.compile(rb"[0-9]+")
#: Maps every octet to one of NUL, CR, LF, DC3, DEL, ".", 0xFF, space.
_HOSTILE = bytes(b"\x00\r\n\x13\x7f.\xff "[i % 8] for i in range(256))
_GARBAGE = (b"\xc3\xa9", b"\xe2\x80\xa8", b"\xc2\xb2", b"\xd9\xa1", b"\xff", b"\xc3", b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80", b"\x13", b"\x7f", b"\t", b"\x1b[0m", b"\xef\xbb\xbf", b"\xc0\x80")


# ------------------------------------------------------------------ the loop


@attrs.define
class Stats:
    """What a run did."""

    inputs: int = 0
    mutated: int = 0
    sessions: int = 0
    server_sessions: int = 0
    crashes: dict[str, Crash] = attrs.field(factory=dict)


class Fuzzer:
    """The deterministic mutational loop (see the module docstring: an input is a chunk).

    Args:
        seed: The PRNG seed; the same seed gives the same inputs.
        seeds: The seed sessions (server and client); ``all_seeds()`` by default.
        client_share: The fraction of sessions that fuzz the client side.
    """

    def __init__(self, seed: int = 0, seeds: Sequence[Seed] | None = None, client_share: float = 0.25) -> None:
        seeds = all_seeds() if seeds is None else seeds
        self.rng = random.Random(seed)
        self.server_seeds = [s for s in seeds if not s.header[0] & CLIENT]
        self.client_seeds = [s for s in seeds if s.header[0] & CLIENT]
        self.client_share = client_share
        self.stats = Stats()

    def session(self) -> None:
        """Run one session of mutated chunks; record a crash in ``stats``."""
        rng = self.rng
        rand = rng.random
        stats = self.stats
        client = bool(self.client_seeds) and (not self.server_seeds or rand() < self.client_share)
        pool = self.client_seeds if client else self.server_seeds
        seed = pool[int(rand() * len(pool))]
        header = seed.header
        if rand() < 0.3:  # another configuration or mood
            header = bytes((header[0] ^ (1 << int(rand() * 7)), int(rand() * 256) if rand() < 0.5 else header[1]))
        chunks = list(seed.chunks)
        if rand() < 0.3 and len(chunks) > 1:  # drop, repeat or move a chunk
            i = int(rand() * len(chunks))
            what = int(rand() * 3)
            if what == 0:
                del chunks[i]
            elif what == 1:
                chunks.insert(i, chunks[i])
            else:
                chunks.insert(int(rand() * len(chunks)), chunks.pop(i))
        # How hard to mutate this session: lightly mutated sessions reach the deep
        # states (DATA, BDAT, after AUTH and STARTTLS), heavily mutated ones the odd ones.
        strength = (0.1, 0.25, 0.5, 0.8)[int(rand() * 4)]

        def other() -> bytes:
            donor = pool[int(rand() * len(pool))].chunks
            return donor[int(rand() * len(donor))]

        fed: list[bytes] = []
        mutated = 0
        stats.sessions += 1
        stats.server_sessions += not client
        try:
            harness = _harness(header)
            feed = harness.feed
            for chunk in chunks:
                if chunk == HANDSHAKE:
                    fed.append(chunk)
                    harness.handshake()
                    continue
                roll = rand()
                if roll < strength:
                    chunk = hostile(rng) if roll < strength * 0.15 else mutate(chunk, rng, other)
                    mutated += 1
                fed.append(chunk)
                if rand() < 0.7 or len(chunk) < 2:  # in one piece, or two
                    feed(chunk)
                else:
                    cut = 1 + int(rand() * (len(chunk) - 1))
                    feed(chunk[:cut])
                    feed(chunk[cut:])
                if harness.done:
                    break
            harness.close()
        except Exception as exc:  # noqa: BLE001 - anything but RemoteProtocolError is the finding
            crash = Crash(header + b"".join(fed), exc)
            stats.crashes.setdefault(crash.signature, crash)
        stats.inputs += len(fed) - fed.count(HANDSHAKE)
        stats.mutated += mutated

    def run(self, inputs: int) -> Stats:
        """Run sessions until at least ``inputs`` inputs (chunks) were fed."""
        while self.stats.inputs < inputs:
            self.session()
        return self.stats


def save(crash: Crash, directory: Path = CORPUS) -> Path:
    """Write the crashing input as ``crash-<sha1>`` (libFuzzer's name) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"crash-{hashlib.sha1(crash.data).hexdigest()}"
    path.write_bytes(crash.data)
    return path
