"""ClientConnection: the sending side of SMTP, for the delivery worker.

Strategy: the mirror of ``ServerConnection``. ``send(command)`` serializes a command
event (``Ehlo``, ``MailFrom``, ``Data`` ...) after checking it is legal now — the
server offered the extension, no reply is outstanding unless PIPELINING allows it
(RFC 2920 3.1) — and queues the command; ``next_event()`` parses the next reply and
returns it paired with the command it answers (``ServerReply``), applying the row of
``CLIENT_TRANSITIONS``. Message bodies are normalized (bare CR/LF become CRLF) and
dot-stuffed, so this client can never end a message early at any receiver.
"""

from __future__ import annotations

import re
import types
from collections import deque
from collections.abc import Mapping
from typing import NoReturn

import attrs

from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import (
    NEED_DATA,
    PAUSED,
    AuthCredentials,
    AuthResponse,
    Bdat,
    ConnectionClosed,
    Data,
    DataStart,
    Ehlo,
    EndOfData,
    Event,
    Helo,
    MailFrom,
    Noop,
    Quit,
    RcptTo,
    Reply,
    Rset,
    Sentinel,
    ServerReply,
    StartTLS,
)
from ._receivebuffer import OVERLONG, ReceiveBuffer
from ._state import (
    AUTH,
    CLIENT_TRANSITIONS,
    CLOSED,
    CLOSING,
    COMMAND,
    DATA,
    ERROR,
    GREETING,
    REPLY,
    TLS_HANDOFF,
    Effect,
    Limits,
    State,
    lookup,
)
from ._syntax import Address, encode_base64
from ._writers import DotStuffer, LineEndingNormalizer, write_command

__all__ = ["Capabilities", "ClientConnection", "ClientTransaction"]

_REPLY_LINE = re.compile(r"([2-5][0-9][0-9])([ -]|$)(.*)", re.DOTALL)
_ENHANCED_PREFIX = re.compile(r"([245]\.[0-9]{1,3}\.[0-9]{1,3})(?: |$)")
# RFC 2920 3.1: only these may be followed by more commands before their reply.
_PIPELINABLE = (MailFrom, RcptTo, Rset, Bdat)
_DEFAULT_LIMITS = Limits()


def _freeze(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return types.MappingProxyType(dict(mapping))


@attrs.frozen
class Capabilities:
    """What the server's EHLO reply offered (all false after HELO).

    Attributes:
        esmtp: The server answered EHLO.
        pipelining: PIPELINING (RFC 2920).
        size: The SIZE limit (RFC 1870); ``0`` means no fixed limit; ``None`` if not
            offered.
        starttls: STARTTLS (RFC 3207).
        auth: AUTH mechanisms (RFC 4954), upper-cased.
        eightbitmime: 8BITMIME (RFC 6152).
        smtputf8: SMTPUTF8 (RFC 6531).
        chunking: CHUNKING, the BDAT command (RFC 3030).
        enhanced_status_codes: ENHANCEDSTATUSCODES (RFC 2034).
        keywords: Every EHLO keyword (upper-cased) with its parameter text.
    """

    esmtp: bool = False
    pipelining: bool = False
    size: int | None = None
    starttls: bool = False
    auth: tuple[str, ...] = ()
    eightbitmime: bool = False
    smtputf8: bool = False
    chunking: bool = False
    enhanced_status_codes: bool = False
    keywords: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze, hash=False)

    @classmethod
    def from_ehlo(cls, reply: Reply) -> Capabilities:
        """Parse the lines after the first of a 250 reply to EHLO (RFC 5321 4.1.1.1)."""
        keywords: dict[str, str] = {}
        for line in reply.text[1:]:
            keyword, _, params = line.strip().partition(" ")
            if keyword.upper().startswith("AUTH="):  # pre-RFC 4954 form, still seen
                keyword, params = "AUTH", keyword[5:] + " " + params
            keywords[keyword.upper()] = f"{keywords.get(keyword.upper(), '')} {params}".strip()
        size_text = keywords.get("SIZE")
        return cls(
            esmtp=True,
            pipelining="PIPELINING" in keywords,
            size=(int(size_text) if size_text.isdigit() else 0) if size_text is not None else None,
            starttls="STARTTLS" in keywords,
            auth=tuple(dict.fromkeys(m.upper() for m in keywords.get("AUTH", "").split())),
            eightbitmime="8BITMIME" in keywords,
            smtputf8="SMTPUTF8" in keywords,
            chunking="CHUNKING" in keywords,
            enhanced_status_codes="ENHANCEDSTATUSCODES" in keywords,
            keywords=keywords,
        )


@attrs.frozen
class ClientTransaction:
    """The client's view of the current mail transaction.

    Attributes:
        mail: The ``MailFrom`` sent.
        mail_reply: Its reply, once received.
        recipients: Each recipient sent so far with its reply (``None`` until it
            arrives), in order: the per-recipient results.
    """

    mail: MailFrom
    mail_reply: Reply | None = None
    recipients: tuple[tuple[Address, Reply | None], ...] = ()

    @property
    def accepted(self) -> tuple[Address, ...]:
        """Recipients that got a 2xx."""
        return tuple(a for a, r in self.recipients if r is not None and r.is_positive)


def _sanitize(text: str) -> str:
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


class ClientConnection:
    """The client side of one SMTP session.

    Args:
        limits: ``max_reply_line``, ``max_reply_lines`` and ``max_command_line`` apply.
        tls_active: The stream is already TLS (implicit TLS, RFC 8314).
    """

    def __init__(self, *, limits: Limits = _DEFAULT_LIMITS, tls_active: bool = False) -> None:
        self.limits = limits
        self._buf = ReceiveBuffer()
        self._eof = False
        self._state = GREETING
        self._pending: deque[Event | None] = deque([None])  # None: the greeting
        self._lines: list[str] = []
        self._tls = tls_active
        self._caps: Capabilities | None = None
        self._authenticated = False
        self._auth_responses: deque[str] = deque()
        self._txn: ClientTransaction | None = None
        self._stuffer: DotStuffer | None = None
        self._bdat: LineEndingNormalizer | None = None
        self._discard_mark = 0

    # ------------------------------------------------------------------ views

    @property
    def state(self) -> State:
        """``REPLY`` while replies are outstanding in ``COMMAND``, else the state."""
        if self._state is COMMAND and self._pending:
            return REPLY
        return self._state

    @property
    def capabilities(self) -> Capabilities | None:
        """What the last EHLO (or HELO) reply offered; ``None`` before one."""
        return self._caps

    @property
    def transaction(self) -> ClientTransaction | None:
        """The transaction in progress, or ``None``."""
        return self._txn

    @property
    def tls(self) -> bool:
        """TLS is active."""
        return self._tls

    @property
    def authenticated(self) -> bool:
        """A 235 answered our AUTH."""
        return self._authenticated

    @property
    def outstanding(self) -> int:
        """Commands sent whose reply has not arrived yet."""
        return len(self._pending)

    # ------------------------------------------------------------------ output

    def send(self, command: Event) -> bytes:
        """Serialize ``command`` and expect its reply.

        ``Data`` and ``EndOfData`` are legal only after a 354; ``AuthResponse`` only
        after a 334. Body bytes are normalized and dot-stuffed (``Data``) or
        normalized and counted (``Bdat``).

        Raises:
            LocalProtocolError: Not legal now: a reply is outstanding and PIPELINING
                does not allow more; the server did not offer the extension; no
                transaction; wrong state. Nothing is sent or queued.
        """
        state = self._state
        if state is DATA:
            if isinstance(command, Data):
                assert self._stuffer is not None
                return self._stuffer.feed(command.data)
            if isinstance(command, EndOfData):
                assert self._stuffer is not None
                data = self._stuffer.finish()
                self._stuffer = None
                self._state = COMMAND
                self._pending.append(command)
                return data
            raise LocalProtocolError(f"{type(command).__name__} cannot be sent in state DATA (send Data or EndOfData)")
        if state is AUTH:
            if not isinstance(command, AuthResponse) or not self._auth_responses:
                raise LocalProtocolError(f"{type(command).__name__} cannot be sent in state AUTH (send AuthResponse)")
            self._state = COMMAND
            self._pending.append(command)
            # RFC 4954 4: response lines may be up to 12288 octets.
            return write_command(self._auth_responses.popleft(), max_length=self.limits.max_auth_line)
        if state is not COMMAND:
            raise LocalProtocolError(f"{type(command).__name__} cannot be sent in state {self.state.name}")
        if self._pending:
            caps = self._caps
            if not (caps and caps.pipelining and all(isinstance(c, _PIPELINABLE) for c in self._pending)):
                raise LocalProtocolError(
                    f"{type(command).__name__} cannot be sent in state REPLY: wait for the reply "
                    f"to {type(self._pending[-1]).__name__}" + ("" if caps and caps.pipelining else " (no PIPELINING)")
                )
        if isinstance(command, (Ehlo, Helo)):
            data = self._line(f"{'EHLO' if isinstance(command, Ehlo) else 'HELO'} {command.hostname}")
        elif isinstance(command, StartTLS):
            self._require(self._caps is not None and self._caps.starttls and not self._tls, "STARTTLS not offered")
            data = self._line("STARTTLS")
        elif isinstance(command, AuthCredentials):
            data = self._auth(command)
        elif isinstance(command, MailFrom):
            self._require(self._txn is None, "a transaction is already open (send Rset)")
            data = self._line(f"MAIL FROM:{_path(command.reverse_path)}{self._params(command)}")
            self._txn = ClientTransaction(command)
        elif isinstance(command, RcptTo):
            self._require(self._txn is not None, "RcptTo needs a MailFrom first")
            data = self._line(f"RCPT TO:{_path(command.forward_path)}{self._params(command)}")
            assert self._txn is not None
            self._txn = attrs.evolve(self._txn, recipients=(*self._txn.recipients, (command.forward_path, None)))
        elif isinstance(command, DataStart):
            self._require(self._txn is not None and bool(self._txn.recipients), "DataStart needs MailFrom and RcptTo")
            data = self._line("DATA")
        elif isinstance(command, Bdat):
            self._require(self._caps is not None and self._caps.chunking, "CHUNKING not offered")
            self._require(self._txn is not None and bool(self._txn.recipients), "Bdat needs MailFrom and RcptTo")
            if self._bdat is None:
                self._bdat = LineEndingNormalizer()
            chunk = self._bdat.feed(command.data)
            if command.last:
                chunk += self._bdat.finish()
                self._bdat = None
            data = self._line(f"BDAT {len(chunk)}{' LAST' if command.last else ''}") + chunk
        elif isinstance(command, (Rset, Noop, Quit)):
            data = self._line(type(command).__name__.upper())
            if isinstance(command, Rset):
                # RFC 5321 4.1.1.5: the server drops the transaction when it reads RSET,
                # so a MAIL pipelined after it starts a new one; its reply must not
                # clear that newer transaction (see _complete).
                self._txn = None
                self._bdat = None
        else:
            raise LocalProtocolError(f"{type(command).__name__} is not a client command")
        self._pending.append(command)
        return data

    def _line(self, line: str) -> bytes:
        return write_command(line, max_length=self.limits.max_command_line)

    @staticmethod
    def _require(condition: bool, why: str) -> None:
        if not condition:
            raise LocalProtocolError(why)

    def _params(self, command: MailFrom | RcptTo) -> str:
        caps = self._caps or Capabilities()
        needs = {"SIZE": caps.size is not None, "SMTPUTF8": caps.smtputf8, "BODY": caps.eightbitmime}
        for key in command.params:
            self._require(caps.esmtp and needs.get(key.upper(), True), f"parameter {key} needs an extension the server did not offer")
        address = command.reverse_path if isinstance(command, MailFrom) else command.forward_path
        if address is not None and not address.is_ascii:
            smtputf8 = "SMTPUTF8" in command.params if isinstance(command, MailFrom) else (
                self._txn is not None and self._txn.mail.smtputf8)
            self._require(smtputf8, f"{address} needs SMTPUTF8 (RFC 6531)")
        return "".join(f" {k}" if v is None else f" {k}={v}" for k, v in command.params.items())

    def _auth(self, command: AuthCredentials) -> bytes:
        mechanism = command.mechanism.upper()
        self._require(self._caps is not None and mechanism in self._caps.auth, f"AUTH {mechanism} not offered")
        self._require(not self._authenticated and self._txn is None, "AUTH after AUTH or inside a transaction")
        if mechanism == "PLAIN":
            response = encode_base64(f"{command.authzid}\0{command.authcid}\0{command.password}".encode())
            line = f"AUTH PLAIN {response}"
            if len(line) + 2 <= self.limits.max_command_line:  # RFC 4954 4
                return self._line(line)
            self._auth_responses = deque([response])
            return self._line("AUTH PLAIN")
        self._auth_responses = deque(
            [encode_base64(command.authcid.encode()), encode_base64(command.password.encode())]
        )
        return self._line("AUTH LOGIN")

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the server; ``b""`` means it closed its side.

        Raises:
            LocalProtocolError: Data after ``b""``.
        """
        if self._eof:
            if data:
                raise LocalProtocolError("receive_data() called after the peer closed (b'' was fed)")
            return
        if not data:
            self._eof = True
        elif self._state is TLS_HANDOFF:
            self._buf.discarded += len(data)
        elif self._state not in (CLOSING, CLOSED, ERROR):
            self._buf.append(data)

    def next_event(self) -> Event | Sentinel:
        """Parse the next reply.

        Returns:
            ``ServerReply`` (reply and the command it answers); ``ConnectionClosed``;
            ``NEED_DATA``; or ``PAUSED`` when no reply is expected (your move).

        Raises:
            RemoteProtocolError: A malformed or unexpected reply; state ``ERROR``.
            LocalProtocolError: Called in state ``ERROR``.
        """
        if self._state is ERROR:
            raise LocalProtocolError("next_event() called in state ERROR")
        if self._state is CLOSED:
            return ConnectionClosed()
        if self._state in (TLS_HANDOFF, CLOSING):
            return PAUSED
        while True:
            line = self._buf.extract_line(self.limits.max_reply_line)
            if line is None:
                if self._eof:
                    self._state = CLOSED
                    return ConnectionClosed()
                return NEED_DATA if self._pending else PAUSED
            if line is OVERLONG:
                self._fail(f"reply line longer than {self.limits.max_reply_line} octets (RFC 5321 4.5.3.1.5)")
            assert isinstance(line, bytes)
            text = line.rstrip(b"\r\n").decode("utf-8", "replace")  # tolerant: replies are for logs
            match = _REPLY_LINE.fullmatch(text)
            if match is None or (self._lines and match.group(1) != self._lines[0][:3]):
                self._fail(f"malformed reply line {text[:80]!r}")
            self._lines.append(text)
            if len(self._lines) > self.limits.max_reply_lines:
                self._fail(f"reply longer than {self.limits.max_reply_lines} lines")
            if match.group(2) != "-":
                return self._complete(self._reply())

    def _fail(self, why: str) -> NoReturn:
        self._state = ERROR
        raise RemoteProtocolError(why, reply_hint=None)

    def _reply(self) -> Reply:
        code = int(self._lines[0][:3])
        texts = [_sanitize(line[4:]) for line in self._lines]
        self._lines = []
        enhanced = None
        found = _ENHANCED_PREFIX.match(texts[0])
        if found and found.group(1)[0] == str(code)[0]:
            enhanced = found.group(1)
            texts = [t[len(enhanced) + 1 :] if t.startswith(enhanced) else t for t in texts]
        return Reply(code, texts, enhanced)

    def _complete(self, reply: Reply) -> ServerReply:
        if not self._pending:
            if reply.code == 421:  # RFC 5321 3.8: the server may close at any time
                self._state = CLOSING
                return ServerReply(None, reply)
            self._fail(f"unsolicited reply {reply.code}")
        command = self._pending.popleft()
        row = lookup(CLIENT_TRANSITIONS, command, reply.code, None)
        if row is None:
            self._fail(f"unexpected reply {reply.code} to {type(command).__name__ if command else 'the greeting'}")
        next_state, effect = row
        if effect is Effect.EHLO_ACCEPTED:
            self._caps = Capabilities.from_ehlo(reply)
        elif effect is Effect.HELO_ACCEPTED:
            self._caps = Capabilities()
        elif effect is Effect.TLS_HANDOFF:
            self._discard_mark = self._buf.discarded
            self._buf.discard_all()  # anything after the 220 is a response injection
        elif effect is Effect.AUTHENTICATED:
            self._authenticated = True
            self._auth_responses.clear()
        elif effect is Effect.AUTH_ENDED:
            self._auth_responses.clear()
        elif effect is Effect.TRANSACTION_STARTED and self._txn is not None:
            self._txn = attrs.evolve(self._txn, mail_reply=reply)
        elif effect in (Effect.RECIPIENT_ACCEPTED, Effect.RECIPIENT_REFUSED) and self._txn is not None:
            recipients = list(self._txn.recipients)
            index = next(i for i, (_, r) in enumerate(recipients) if r is None)
            recipients[index] = (recipients[index][0], reply)
            self._txn = attrs.evolve(self._txn, recipients=tuple(recipients))
        elif effect is Effect.DATA_STARTED:
            self._stuffer = DotStuffer()
        elif effect is Effect.TRANSACTION_ENDED and not isinstance(command, Rset):
            self._txn = None
            self._bdat = None
        if isinstance(command, Bdat) and command.last:
            self._txn = None  # RFC 3030 2: the LAST chunk's reply ends the transaction
            self._bdat = None
        if isinstance(command, MailFrom) and not reply.is_positive:
            self._txn = None  # RFC 5321 3.3: no transaction; pipelined RCPTs will get 503
        if effect is Effect.CLOSE or next_state is CLOSING:
            self._pending.clear()
        self._state = next_state
        return ServerReply(command, reply)

    # ------------------------------------------------------------------ session

    def tls_established(self) -> int:
        """Call after the TLS handshake that followed a 220 to STARTTLS.

        Drops anything the server sent after its 220 (response injection) and forgets
        the capabilities: send EHLO again (RFC 3207 4.2).

        Returns:
            Plaintext octets discarded.

        Raises:
            LocalProtocolError: Not in state ``TLS_HANDOFF``.
        """
        if self._state is not TLS_HANDOFF:
            raise LocalProtocolError(f"tls_established() called in state {self.state.name}, not TLS_HANDOFF")
        self._buf.discard_all()
        self._tls = True
        self._caps = None
        self._authenticated = False
        self._txn = None
        self._state = COMMAND
        return self._buf.discarded - self._discard_mark


def _path(address: Address | None) -> str:
    return "<>" if address is None else f"<{address}>"
