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
from typing import Literal, NoReturn

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
    ANY,
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
from ._text import MAX_REPLY_TEXT, echo
from ._writers import DotStuffer, LineEndingNormalizer, LineSplitter, write_command

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
            size=_size(size_text),
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


class ClientConnection:
    """The client side of one SMTP session.

    Reply text from the server is untrusted: each line comes out as printable ASCII
    (other octets backslash-escaped) of at most 496 characters, so a ``Reply`` the
    client parsed can always be sent on by a ``ServerConnection``.

    Args:
        limits: ``max_reply_line``, ``max_reply_lines``, ``max_command_line``,
            ``max_auth_line`` and (with ``"split"``) ``max_text_line`` apply.
        tls_active: The stream is already TLS (implicit TLS, RFC 8314).
        long_line_policy: ``"keep"`` sends body lines as given; ``"split"`` breaks any
            line longer than ``limits.max_text_line`` (CRLF included, so 998 octets of
            content by default, RFC 5321 4.5.3.1.6) by inserting a CRLF, as Postfix's
            smtp client does (``smtp_line_length_limit``), for ``Data`` and ``Bdat``
            alike. The split happens before dot-stuffing, so a piece that starts with a
            dot is stuffed, and never inside a CRLF.

    Raises:
        ValueError: An unknown ``long_line_policy``, or ``"split"`` with a
            ``max_text_line`` under 3.
    """

    def __init__(
        self,
        *,
        limits: Limits = _DEFAULT_LIMITS,
        tls_active: bool = False,
        long_line_policy: Literal["keep", "split"] = "keep",
    ) -> None:
        if long_line_policy not in ("keep", "split"):
            raise ValueError(f"long_line_policy must be 'keep' or 'split', not {long_line_policy!r}")
        if long_line_policy == "split" and limits.max_text_line < 3:
            raise ValueError(f"long_line_policy='split' needs max_text_line >= 3, not {limits.max_text_line}")
        self.limits = limits
        self._max_body_line = limits.max_text_line - 2 if long_line_policy == "split" else None
        self._buf = ReceiveBuffer()
        self._eof = False
        self._state = GREETING
        # What awaits a reply (None: the greeting), each with the serial of the
        # transaction it was sent in: after a pipelined RSET + MAIL the old
        # transaction's replies must not touch the new one.
        self._pending: deque[tuple[Event | None, int]] = deque([(None, 0)])
        self._serial = 0
        self._lines: list[str] = []
        self._tls = tls_active
        self._caps: Capabilities | None = None
        self._authenticated = False
        self._auth_responses: deque[str] = deque()
        self._txn: ClientTransaction | None = None
        self._stuffer: DotStuffer | None = None
        self._bdat: LineEndingNormalizer | None = None
        self._bdat_splitter: LineSplitter | None = None
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
            return self._send_content(command)
        if state is AUTH:
            return self._send_auth_response(command)
        if state is not COMMAND:
            raise LocalProtocolError(f"{type(command).__name__} cannot be sent in state {self.state.name}")
        if self._pending:
            self._check_pipelining(command)
        data = self._serialize(command)
        self._pending.append((command, self._serial))
        return data

    def _send_content(self, command: Event) -> bytes:
        """In DATA (after a 354): message content, then its end."""
        if isinstance(command, Data):
            assert self._stuffer is not None
            return self._stuffer.feed(command.data)
        if isinstance(command, EndOfData):
            assert self._stuffer is not None
            data = self._stuffer.finish()
            self._stuffer = None
            self._state = COMMAND
            self._pending.append((command, self._serial))
            return data
        raise LocalProtocolError(f"{type(command).__name__} cannot be sent in state DATA (send Data or EndOfData)")

    def _send_auth_response(self, command: Event) -> bytes:
        """In AUTH (after a 334): the next prepared response, or the cancelling "*"."""
        if not isinstance(command, AuthResponse):
            raise LocalProtocolError(f"{type(command).__name__} cannot be sent in state AUTH (send AuthResponse)")
        self._state = COMMAND
        self._pending.append((command, self._serial))
        # A 334 after the last response (PLAIN and LOGIN have no more) is answered
        # with "*", which cancels the exchange (RFC 4954 4); the server says 501.
        response = self._auth_responses.popleft() if self._auth_responses else "*"
        # RFC 4954 4: response lines may be up to 12288 octets.
        return write_command(response, max_length=self.limits.max_auth_line)

    def _check_pipelining(self, command: Event) -> None:
        """With replies outstanding, ``command`` may follow only under PIPELINING, and
        only after commands RFC 2920 3.1 lets a group continue past."""
        caps = self._caps
        if not (caps and caps.pipelining and all(isinstance(c, _PIPELINABLE) for c, _ in self._pending)):
            raise LocalProtocolError(
                f"{type(command).__name__} cannot be sent in state REPLY: wait for the reply "
                f"to {type(self._pending[-1][0]).__name__}" + ("" if caps and caps.pipelining else " (no PIPELINING)")
            )

    def _serialize(self, command: Event) -> bytes:
        """The bytes of a command sent in state COMMAND, once it is legal now."""
        if isinstance(command, (Ehlo, Helo)):
            return self._line(f"{'EHLO' if isinstance(command, Ehlo) else 'HELO'} {command.hostname}")
        if isinstance(command, StartTLS):
            self._require(self._caps is not None and self._caps.starttls and not self._tls, "STARTTLS not offered")
            return self._line("STARTTLS")
        if isinstance(command, AuthCredentials):
            return self._auth(command)
        if isinstance(command, MailFrom):
            self._require(self._txn is None, "a transaction is already open (send Rset)")
            data = self._line(f"MAIL FROM:{_path(command.reverse_path)}{self._params(command)}")
            self._txn = ClientTransaction(command)
            self._serial += 1
            return data
        if isinstance(command, RcptTo):
            self._require(self._txn is not None, "RcptTo needs a MailFrom first")
            data = self._line(f"RCPT TO:{_path(command.forward_path)}{self._params(command)}")
            assert self._txn is not None
            self._txn = attrs.evolve(self._txn, recipients=(*self._txn.recipients, (command.forward_path, None)))
            return data
        if isinstance(command, DataStart):
            self._require(self._txn is not None and bool(self._txn.recipients), "DataStart needs MailFrom and RcptTo")
            return self._line("DATA")
        if isinstance(command, Bdat):
            return self._bdat_chunk(command)
        if isinstance(command, (Rset, Noop, Quit)):
            if isinstance(command, Rset):
                # RFC 5321 4.1.1.5: the server drops the transaction when it reads RSET,
                # so a MAIL pipelined after it starts a new one; its reply must not
                # clear that newer transaction (see _complete).
                self._txn = None
                self._bdat = self._bdat_splitter = None
            return self._line(type(command).__name__.upper())
        raise LocalProtocolError(f"{type(command).__name__} is not a client command")

    def _bdat_chunk(self, command: Bdat) -> bytes:
        """A BDAT line and its chunk, normalized (and split, with a line limit) across
        the message's chunks; the sizes count the bytes really sent."""
        self._require(self._caps is not None and self._caps.chunking, "CHUNKING not offered")
        self._require(self._txn is not None and bool(self._txn.recipients), "Bdat needs MailFrom and RcptTo")
        if self._bdat is None:
            self._bdat = LineEndingNormalizer()
            if self._max_body_line is not None:
                self._bdat_splitter = LineSplitter(self._max_body_line)
        chunk = self._bdat.feed(command.data)
        if command.last:
            chunk += self._bdat.finish()
            self._bdat = None
        if self._bdat_splitter is not None:
            chunk = self._bdat_splitter.feed(chunk)
            if command.last:
                self._bdat_splitter = None
        return self._line(f"BDAT {len(chunk)}{' LAST' if command.last else ''}") + chunk

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
        self._require(mechanism in ("PLAIN", "LOGIN"), f"AUTH {mechanism}: proto drives PLAIN and LOGIN only")
        self._require(self._caps is not None and mechanism in self._caps.auth, f"AUTH {mechanism} not offered")
        self._require(not self._authenticated and self._txn is None, "AUTH after AUTH or inside a transaction")
        if mechanism == "PLAIN":
            responses = [encode_base64(f"{command.authzid}\0{command.authcid}\0{command.password}".encode())]
        else:
            responses = [encode_base64(command.authcid.encode()), encode_base64(command.password.encode())]
        for response in responses:  # refused now rather than after the server's 334
            self._require(
                len(response) + 2 <= self.limits.max_auth_line,
                f"AUTH {mechanism} response of {len(response) + 2} octets exceeds max_auth_line "
                f"({self.limits.max_auth_line}, RFC 4954 4)",
            )
        if mechanism == "PLAIN" and len(f"AUTH PLAIN {responses[0]}\r\n") <= self.limits.max_command_line:
            return self._line(f"AUTH PLAIN {responses[0]}")  # the initial response (RFC 4954 4)
        self._auth_responses = deque(responses)
        return self._line(f"AUTH {mechanism}")

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes | bytearray) -> None:
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
            # Tolerant (replies are for logs and for passing on): octets that are not
            # UTF-8 become \xNN; _reply() then makes each line printable ASCII.
            text = line.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
            match = _REPLY_LINE.fullmatch(text)
            if match is None or (self._lines and match.group(1) != self._lines[0][:3]):
                self._fail(f"malformed reply line {echo(text, limit=80)!r}")
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
        texts = [echo(line[4:], limit=MAX_REPLY_TEXT) for line in self._lines]
        self._lines = []
        enhanced = None
        found = _ENHANCED_PREFIX.match(texts[0])
        if found and found.group(1)[0] == str(code)[0]:
            enhanced = found.group(1)
            texts = [t[len(enhanced) + 1 :] if t.startswith(enhanced) else t for t in texts]
        return Reply(code, texts, enhanced)

    def _complete(self, reply: Reply) -> ServerReply:
        if not self._pending:
            # RFC 5321 3.8: the server may close at any time (the table's ANY row: 421).
            unsolicited = CLIENT_TRANSITIONS.get((ANY, reply.code))
            if unsolicited is None:
                self._fail(f"unsolicited reply {reply.code}")
            self._state = unsolicited[0]
            return ServerReply(None, reply)
        command, serial = self._pending.popleft()
        row = lookup(CLIENT_TRANSITIONS, command, reply.code)
        if row is None:
            self._fail(f"unexpected reply {reply.code} to {type(command).__name__ if command else 'the greeting'}")
        next_state, effect = row
        # A reply to a command of a transaction that a pipelined RSET already ended
        # says nothing about the current one.
        current = self._txn is not None and serial == self._serial
        self._take_effect(effect, command, reply, current)
        if current and self._reply_ends_transaction(effect, command, reply):
            self._end_transaction()
        if effect is Effect.CLOSE or next_state is CLOSING:
            self._pending.clear()
        self._state = next_state
        return ServerReply(command, reply)

    def _take_effect(self, effect: Effect | None, command: Event | None, reply: Reply, current: bool) -> None:
        """What the table row's effect changes: capabilities, TLS, AUTH, the transaction."""
        if effect in (Effect.EHLO_ACCEPTED, Effect.HELO_ACCEPTED):
            self._caps = Capabilities.from_ehlo(reply) if effect is Effect.EHLO_ACCEPTED else Capabilities()
            self._end_transaction()  # RFC 5321 4.1.4: EHLO/HELO reset the transaction
        elif effect is Effect.TLS_HANDOFF:
            self._discard_mark = self._buf.discarded
            self._buf.discard_all()  # anything after the 220 is a response injection
        elif effect is Effect.AUTHENTICATED:
            self._authenticated = True
            self._auth_responses.clear()
        elif effect is Effect.AUTH_ENDED:
            self._auth_responses.clear()
        elif effect is Effect.TRANSACTION_STARTED and current:
            assert self._txn is not None
            self._txn = attrs.evolve(self._txn, mail_reply=reply)
        elif effect in (Effect.RECIPIENT_ACCEPTED, Effect.RECIPIENT_REFUSED) and current:
            self._record_recipient_reply(reply)
        elif effect is Effect.DATA_STARTED:
            self._stuffer = DotStuffer(self._max_body_line)

    def _record_recipient_reply(self, reply: Reply) -> None:
        """Replies to pipelined RCPTs come in order: this one is the first recipient's
        without a reply yet."""
        assert self._txn is not None
        recipients = list(self._txn.recipients)
        index = next((i for i, (_, r) in enumerate(recipients) if r is None), None)
        if index is not None:
            recipients[index] = (recipients[index][0], reply)
            self._txn = attrs.evolve(self._txn, recipients=tuple(recipients))

    @staticmethod
    def _reply_ends_transaction(effect: Effect | None, command: Event | None, reply: Reply) -> bool:
        """Whether this reply ends the current transaction (an RSET ended it when sent)."""
        if effect is Effect.TRANSACTION_ENDED and not isinstance(command, Rset):
            return True
        if isinstance(command, Bdat) and command.last:
            return True  # RFC 3030 2: the LAST chunk's reply ends the transaction
        # RFC 5321 3.3: a refused MAIL opens no transaction; pipelined RCPTs will get 503.
        return isinstance(command, MailFrom) and not reply.is_positive

    def _end_transaction(self) -> None:
        self._txn = None
        self._bdat = self._bdat_splitter = None

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
        self._end_transaction()
        self._state = COMMAND
        return self._buf.discarded - self._discard_mark


def _size(text: str | None) -> int | None:
    """The SIZE keyword's parameter (RFC 1870 4): ``None`` if absent, ``0`` (no fixed
    limit) if missing or not ASCII digits."""
    if text is None:
        return None
    return int(text) if text.isascii() and text.isdigit() else 0


def _path(address: Address | None) -> str:
    return "<>" if address is None else f"<{address}>"
