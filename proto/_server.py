"""ServerConnection: the receiving side of SMTP as a state machine without I/O.

Strategy: h11's shape. ``receive_data()`` buffers bytes; ``next_event()`` runs the
reader for the current state and returns one event (or ``NEED_DATA`` / ``PAUSED``);
``send()`` checks a reply against the transition table in ``_state.py``, applies its
effect and returns the bytes. Every state change goes through that table
(``_transition``): events received, replies sent, and the few signals in between
(a BDAT line, the peer closing, a fatal fault, the TLS handshake); each row's
``Effect`` is one small method, found in ``_EFFECTS``. Every event but ``Data`` and
``ConnectionClosed`` is owed a reply and moves the connection to ``REPLY``, where
further (pipelined) input waits, so replies go out in order by construction (RFC 2920
3.1). Faults the session survives come out as ``ProtocolViolation`` events carrying
the reply to send; a fault that ends it raises ``RemoteProtocolError`` with a 421
``reply_hint``. Session and transaction facts are derived from (event, reply) pairs:
MAIL + 250 opens the transaction, RCPT + 250 adds a recipient, 354 without a recipient
is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import (
    NEED_DATA,
    PAUSED,
    AuthCredentials,
    AuthRequest,
    AutoReply,
    BdatChunk,
    ConnectionClosed,
    Data,
    DataStart,
    Ehlo,
    EndOfData,
    Event,
    Helo,
    MailFrom,
    Noop,
    ProtocolViolation,
    Quit,
    RcptTo,
    Reply,
    Rset,
    Sentinel,
    StartTLS,
)
from ._readers import BdatReader, BodyFilter, DataReader, LineError, decode_command_line
from ._receivebuffer import OVERLONG, ReceiveBuffer
from ._state import (
    AUTH,
    BDAT,
    CLOSED,
    CLOSING,
    COMMAND,
    DATA,
    ERROR,
    GREETING,
    REPLY,
    TLS_HANDOFF,
    Effect,
    Extensions,
    Limits,
    SessionFacts,
    Signal,
    State,
    Transaction,
    reply_transition,
    transition,
)
from ._syntax import (
    Address,
    decode_base64,
    decode_sasl_plain,
    parse_params,
    parse_path,
    split_path_argument,
)
from ._text import MAX_REPLY_TEXT, echo
from ._writers import write_reply

__all__ = ["ServerConnection"]

_NOT_IMPLEMENTED = frozenset({"EXPN", "TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML"})
_HTTP_VERBS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "PATCH"})
_LOGIN_USERNAME = "VXNlcm5hbWU6"  # base64 "Username:"
_LOGIN_PASSWORD = "UGFzc3dvcmQ6"  # base64 "Password:"
_PAUSED_STATES = (GREETING, REPLY, TLS_HANDOFF, CLOSING)  # a tuple: `in` by identity, no Enum.__hash__
_DEFAULT_LIMITS = Limits()
_DEFAULT_EXTENSIONS = Extensions()


def _violation(code: int, enhanced: str, text: str) -> ProtocolViolation:
    # The text often quotes the peer (an address, a parameter): echo() keeps it printable
    # ASCII and short enough for one reply line (RFC 5321 4.2, 4.5.3.1.5), so no input
    # can make the Reply invalid or unsendable.
    safe = echo(text, limit=MAX_REPLY_TEXT)
    return ProtocolViolation(Reply(code, safe, enhanced), safe)


def _sentence(message: str) -> str:
    """A ``ValueError`` message as a reply sentence: first letter upper-cased only."""
    return message[:1].upper() + message[1:]


class ServerConnection:
    """The server side of one SMTP session (RFC 5321, with the extensions in
    ``Extensions``).

    Args:
        hostname: Our name, used in the EHLO reply and the 421 hint.
        limits: The bounds to enforce.
        extensions: What to offer in the EHLO reply (and accept).
        bare_line_ending_policy: ``"reject"`` refuses a message holding a bare CR or
            LF with 550 5.5.2 after its real end; ``"normalize"`` turns each into CRLF.
            Either way the body bytes handed on contain no bare CR or LF.
        long_line_policy: ``"reject"`` refuses a message holding a line longer than
            ``Limits.max_text_line`` (RFC 5321 4.5.3.1.6) with 500 5.5.6 after its real
            end; ``"accept"`` hands such lines on unchanged, as Postfix does (HTML
            generators write them; the sending side splits them, see
            ``ClientConnection``). Either way ``EndOfData.line_too_long`` reports it.
        tls_active: The stream is already TLS (implicit TLS, RFC 8314).
        auth_requires_tls: AUTH is offered and accepted only under TLS (538 5.7.11
            otherwise, RFC 4954 6).
    """

    def __init__(
        self,
        hostname: str,
        *,
        limits: Limits = _DEFAULT_LIMITS,
        extensions: Extensions = _DEFAULT_EXTENSIONS,
        bare_line_ending_policy: Literal["reject", "normalize"] = "reject",
        long_line_policy: Literal["reject", "accept"] = "reject",
        tls_active: bool = False,
        auth_requires_tls: bool = True,
    ) -> None:
        if bare_line_ending_policy not in ("reject", "normalize"):
            raise ValueError(f"bare_line_ending_policy must be 'reject' or 'normalize', not {bare_line_ending_policy!r}")
        if long_line_policy not in ("reject", "accept"):
            raise ValueError(f"long_line_policy must be 'reject' or 'accept', not {long_line_policy!r}")
        self.hostname = hostname
        self.limits = limits
        self.extensions = extensions
        self._normalize = bare_line_ending_policy == "normalize"
        self._reject_long_lines = long_line_policy == "reject"
        self._auth_requires_tls = auth_requires_tls
        self._buf = ReceiveBuffer()
        self._eof = False
        self._state = GREETING
        self._owed: Event | None = None
        # A list, not a deque: it holds at most the few events of one read, and an
        # empty deque costs ~600 octets per idle connection (10,000 of them: 6 MB).
        self._pending: list[Event] = []
        self._reader: DataReader | BdatReader | None = None
        # session
        self._ehlo_name: str | None = None
        self._esmtp = False
        self._tls = tls_active
        self._authenticated: str | None = None
        self._early_talker = False
        self._refused = False  # 554 greeting: only QUIT is accepted (RFC 5321 3.1)
        self._errors = 0
        self._discard_mark = 0  # ReceiveBuffer.discarded when the 220 to STARTTLS went out
        # AUTH exchange in progress: mechanism and LOGIN user name
        self._auth_mechanism: str | None = None
        self._auth_user: str | None = None
        # transaction
        self._mail: MailFrom | None = None
        self._rcpts: list[Address] = []
        self._method: str | None = None
        self._body: BodyFilter | None = None

    # ------------------------------------------------------------------ views

    @property
    def state(self) -> State:
        """The current ``State``."""
        return self._state

    @property
    def session(self) -> SessionFacts:
        """A snapshot of the session facts."""
        return SessionFacts(
            ehlo_name=self._ehlo_name,
            esmtp=self._esmtp,
            tls=self._tls,
            authenticated=self._authenticated,
            early_talker=self._early_talker,
            plaintext_discarded=self._buf.discarded,
            errors=self._errors,
        )

    @property
    def transaction(self) -> Transaction | None:
        """A snapshot of the mail transaction, or ``None`` if no MAIL was accepted."""
        if self._mail is None:
            return None
        return Transaction(self._mail, tuple(self._rcpts), self._method)

    @property
    def buffered(self) -> int:
        """Octets received and not yet consumed (bounded; see ``Limits``)."""
        return len(self._buf)

    @property
    def owed(self) -> Event | None:
        """The event awaiting a reply in state ``REPLY``, else ``None``."""
        return self._owed if self._state is REPLY else None

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed its side.

        Bytes arriving in ``TLS_HANDOFF`` are counted and dropped; after ``CLOSING``
        they are ignored.

        Raises:
            LocalProtocolError: Data after ``b""`` was already fed.
        """
        if self._eof:
            if data:
                raise LocalProtocolError("receive_data() called after the peer closed (b'' was fed)")
            return
        if not data:
            self._eof = True
        elif self._state is TLS_HANDOFF:
            self._buf.discarded += len(data)  # plaintext after STARTTLS: never parsed
        elif self._state not in (CLOSING, CLOSED, ERROR):
            self._buf.append(data)

    def next_event(self) -> Event | Sentinel:
        """Parse the next event from buffered input.

        Returns:
            An event; ``NEED_DATA`` (feed more bytes); or ``PAUSED`` (a reply, the
            greeting or the TLS handshake is due first). In ``CLOSED`` it keeps
            returning ``ConnectionClosed``.

        Raises:
            RemoteProtocolError: The peer must be disconnected (too many errors, an
                HTTP request); the state is now ``ERROR``, send ``reply_hint``.
            LocalProtocolError: Called in state ``ERROR``.
        """
        while True:
            if self._state is ERROR:
                raise LocalProtocolError("next_event() called in state ERROR; send the 421 and close")
            if self._pending:
                return self._emit(self._pending.pop(0))
            if self._state in _PAUSED_STATES:
                return PAUSED
            if self._state is CLOSED:
                return ConnectionClosed()
            events = self._read()
            if events is None:
                if self._eof:
                    self._transition(Signal.PEER_CLOSED)
                    continue
                return NEED_DATA
            if len(events) == 1:
                return self._emit(events[0])  # the common case, without the queue
            self._pending.extend(events)

    def _emit(self, event: Event) -> Event:
        if isinstance(event, ProtocolViolation):
            self._errors += 1
            if self._errors > self.limits.max_errors:
                self._transition(Signal.PEER_BROKE)
                raise RemoteProtocolError(
                    f"too many protocol errors ({self._errors}); the last: {event.reason}",
                    reply_hint=Reply(421, f"{self.hostname} Too many errors, closing connection", "4.7.0"),
                )
        self._transition(type(event), event)
        if not isinstance(event, Data):
            self._owed = event
        return event

    def _transition(self, trigger: type[Event] | Signal, event: Event | None = None) -> None:
        """Move by the table's row for ``trigger`` (an event received, or a signal)."""
        row = transition(self._state, trigger)
        if row is None:
            name = trigger.name if isinstance(trigger, Signal) else trigger.__name__
            raise LocalProtocolError(f"{name} is not legal in state {self._state.name}")
        next_state, effect = row
        _EFFECTS[effect](self, event)
        self._state = next_state

    def _read(self) -> list[Event] | None:
        if self._state is COMMAND:
            return self._read_command()
        if self._state is AUTH:
            return self._read_auth()
        assert self._state in (DATA, BDAT) and self._reader is not None
        return self._reader.read(self._buf)

    def _read_command(self) -> list[Event] | None:
        line = self._buf.extract_line(self.limits.max_command_line)
        if line is None:
            return None
        if line is OVERLONG:
            return [_violation(500, "5.5.6", "Line too long (RFC 5321 4.5.3.1.4)")]
        assert isinstance(line, bytes)
        try:
            text = decode_command_line(line)
        except LineError as exc:
            return [_violation(500, "5.5.2", f"Syntax error: {exc}")]
        event = self._command(text)
        return event if isinstance(event, list) else [event]

    # ------------------------------------------------------------------ commands

    def _command(self, text: str) -> Event | list[Event]:
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if self._refused and verb != "QUIT":
            return _violation(503, "5.5.1", "Service refused; only QUIT is accepted (RFC 5321 3.1)")
        if verb == "EHLO" or verb == "HELO":
            return self._hello(verb, arg)
        if verb == "MAIL":
            return self._mail_from(arg)
        if verb == "RCPT":
            return self._rcpt_to(arg)
        if verb == "DATA":
            return self._data(arg)
        if verb == "BDAT":
            return self._bdat(arg)
        if verb == "STARTTLS":
            return self._starttls(arg)
        if verb == "AUTH":
            return self._auth(arg)
        return self._simple_command(verb, arg)

    def _hello(self, verb: str, arg: str) -> Event:
        name = arg.strip(" ")
        if not name or not name.isascii() or not name.isprintable():
            return _violation(501, "5.5.4", f"Syntax: {verb} <domain or address literal>")
        # The transaction ends as this event is emitted (RFC 5321 4.1.4, TRANSACTION_CLEARED).
        return Ehlo(name) if verb == "EHLO" else Helo(name)

    def _simple_command(self, verb: str, arg: str) -> Event:
        """Commands with no state of their own to check (RSET, NOOP, QUIT, VRFY, HELP),
        and the answer to every other verb."""
        if verb == "RSET":
            if arg.strip(" "):
                return _violation(501, "5.5.4", "Syntax: RSET (no arguments)")
            return Rset()  # the transaction ends as it is emitted (TRANSACTION_CLEARED)
        if verb == "NOOP":
            return Noop()
        if verb == "QUIT":
            if arg.strip(" "):
                return _violation(501, "5.5.4", "Syntax: QUIT (no arguments)")
            return Quit()
        if verb == "VRFY":
            if not arg.strip(" "):
                return _violation(501, "5.5.4", "Syntax: VRFY <string>")
            reply = Reply(252, "Cannot VRFY user, but will accept message and attempt delivery", "2.5.0")
            return AutoReply(reply, "VRFY")
        if verb == "HELP":
            return AutoReply(Reply(214, "See RFC 5321", "2.0.0"), "HELP")
        if verb in _NOT_IMPLEMENTED:
            return _violation(502, "5.5.1", f"{verb} not implemented")
        if verb in _HTTP_VERBS:
            # Cross-protocol request (e.g. a browser made to talk to port 25).
            self._transition(Signal.PEER_BROKE)
            raise RemoteProtocolError(
                f"HTTP {verb} request on the SMTP port",
                reply_hint=Reply(421, f"{self.hostname} This is an SMTP server, closing connection", "4.7.0"),
            )
        return _violation(500, "5.5.1", "Command unrecognized")

    def _mail_from(self, arg: str) -> Event:
        if self._ehlo_name is None:
            return _violation(503, "5.5.1", "Send EHLO/HELO first")
        if self._mail is not None:
            return _violation(503, "5.5.1", "Nested MAIL command")
        if arg[:5].upper() != "FROM:":
            return _violation(501, "5.5.2", "Syntax: MAIL FROM:<address>")
        try:
            path, words = split_path_argument(arg[5:])
        except ValueError as exc:
            return _violation(501, "5.5.2", f"Syntax: MAIL FROM:<address> ({exc})")
        if words and not self._esmtp:
            return _violation(555, "5.5.4", "MAIL parameters need EHLO")
        try:
            params = parse_params(words, smtputf8=self.extensions.smtputf8)
        except ValueError as exc:
            return _violation(501, "5.5.4", _sentence(str(exc)))
        for key, value in params.items():
            fault = self._check_mail_param(key, value)
            if fault is not None:
                return fault
        smtputf8 = "SMTPUTF8" in params
        try:
            reverse_path = parse_path(path, smtputf8=smtputf8, allow_null=True)
        except ValueError as exc:
            if not smtputf8 and not path.isascii():
                return _violation(553, "5.6.7", "Non-ASCII address needs SMTPUTF8 (RFC 6531)")
            return _violation(501, "5.1.7", f"Bad sender address syntax: {exc}")
        return MailFrom(reverse_path, params)

    def _check_mail_param(self, key: str, value: str | None) -> ProtocolViolation | None:
        ext = self.extensions
        if key == "SIZE" and ext.size:
            if value is None or not value.isascii() or not value.isdigit() or len(value) > 20:
                return _violation(501, "5.5.4", "Syntax: SIZE=<octets> (RFC 1870)")
            if int(value) > self.limits.max_message_size:
                return _violation(552, "5.3.4", "Message size exceeds fixed maximum message size")
            return None
        if key == "BODY" and value is not None and value.upper() == "7BIT":
            return None
        if key == "BODY" and value is not None and value.upper() == "8BITMIME" and ext.eightbitmime:
            return None
        if key == "SMTPUTF8" and ext.smtputf8:
            return None if value is None else _violation(501, "5.5.4", "SMTPUTF8 takes no value")
        return _violation(555, "5.5.4", f"MAIL parameter {echo(key)} not recognized or not implemented")

    def _rcpt_to(self, arg: str) -> Event:
        if self._mail is None:
            return _violation(503, "5.5.1", "Need MAIL command")
        if self._method is not None:
            return _violation(503, "5.5.1", "RCPT after BDAT (RFC 3030 2)")
        if arg[:3].upper() != "TO:":
            return _violation(501, "5.5.2", "Syntax: RCPT TO:<address>")
        try:
            path, words = split_path_argument(arg[3:])
        except ValueError as exc:
            return _violation(501, "5.5.2", f"Syntax: RCPT TO:<address> ({exc})")
        if words:
            return _violation(555, "5.5.4", "RCPT parameters not recognized or not implemented")
        if len(self._rcpts) >= self.limits.max_recipients:
            # Not a violation: RFC 5321 4.5.3.1.10 says the client sends the rest later.
            return AutoReply(Reply(452, "Too many recipients", "4.5.3"), "too many recipients")
        smtputf8 = self._mail.smtputf8
        try:
            forward_path = parse_path(path, smtputf8=smtputf8, allow_postmaster=True)
        except ValueError as exc:
            if not smtputf8 and not path.isascii():
                return _violation(553, "5.6.7", "Non-ASCII address needs SMTPUTF8 (RFC 6531)")
            return _violation(501, "5.1.3", f"Bad recipient address syntax: {exc}")
        assert forward_path is not None
        return RcptTo(forward_path)

    def _data(self, arg: str) -> Event:
        if arg.strip(" "):
            return _violation(501, "5.5.4", "Syntax: DATA (no arguments)")
        if self._mail is None:
            return _violation(503, "5.5.1", "Need MAIL command")
        if not self._rcpts:
            return _violation(503, "5.5.1", "Need RCPT command (no valid recipients)")
        if self._method is not None:
            return _violation(503, "5.5.1", "DATA after BDAT (RFC 3030 2)")
        return DataStart()

    def _bdat(self, arg: str) -> Event | list[Event]:
        if not (self.extensions.chunking and self._esmtp):
            return _violation(502, "5.5.1", "BDAT not implemented (CHUNKING not offered)")
        words = arg.split(" ")
        size_text = words[0]
        last = len(words) == 2 and words[1].upper() == "LAST"
        if not (size_text.isascii() and size_text.isdigit() and len(size_text) <= 20) or len(words) > 1 + last:
            # Without a size the octets that follow cannot be skipped; they will be
            # read as commands and fail, up to max_errors.
            return _violation(501, "5.5.4", "Syntax: BDAT <size> [LAST]")
        size = int(size_text)
        fault = None
        if self._mail is None:
            fault = Reply(503, "Need MAIL command", "5.5.1")
        elif not self._rcpts:
            fault = Reply(503, "Need RCPT command (no valid recipients)", "5.5.1")
        if fault is None:
            self._method = "BDAT"
            if self._body is None:
                self._body = self._new_body()
            self._reader = BdatReader(size, last, self._body, None)
        else:
            self._reader = BdatReader(size, last, None, fault)
        self._transition(Signal.BDAT_CHUNK)
        return []

    def _starttls(self, arg: str) -> Event:
        if not self.extensions.starttls:
            return _violation(502, "5.5.1", "STARTTLS not implemented")
        if arg.strip(" "):
            return _violation(501, "5.5.4", "Syntax: STARTTLS (no arguments)")
        if self._tls:
            return _violation(503, "5.5.1", "TLS already active")
        if not self._esmtp:
            return _violation(503, "5.5.1", "Send EHLO first")
        return StartTLS()

    def _auth(self, arg: str) -> Event:
        if not self.extensions.auth:
            return _violation(502, "5.5.1", "AUTH not implemented")
        if not self._esmtp:
            return _violation(503, "5.5.1", "Send EHLO first")
        if self._authenticated is not None:
            return _violation(503, "5.5.1", "Already authenticated (RFC 4954 4)")
        if self._mail is not None:
            return _violation(503, "5.5.1", "AUTH not permitted during a mail transaction (RFC 4954 4)")
        if self._auth_requires_tls and not self._tls:
            return _violation(538, "5.7.11", "Encryption required for requested authentication mechanism")
        words = arg.split(" ")
        if not words[0] or len(words) > 2:
            return _violation(501, "5.5.4", "Syntax: AUTH <mechanism> [initial-response]")
        mechanism = words[0].upper()
        if mechanism not in self.extensions.auth:
            return _violation(504, "5.5.4", "Unrecognized authentication type")
        self._auth_mechanism = mechanism
        if len(words) == 1:
            challenge = "" if mechanism == "PLAIN" else _LOGIN_USERNAME
            return AuthRequest(Reply(334, challenge), f"AUTH {mechanism} challenge", mechanism)
        return self._auth_step(words[1])

    def _read_auth(self) -> list[Event] | None:
        line = self._buf.extract_line(self.limits.max_auth_line)
        if line is None:
            return None
        if line is OVERLONG:
            return [_violation(500, "5.5.6", "Authentication exchange line is too long (RFC 4954 4)")]
        assert isinstance(line, bytes)
        try:
            text = decode_command_line(line)
        except LineError as exc:
            return [_violation(501, "5.5.2", f"Syntax error: {exc}")]
        if text == "*":
            return [AutoReply(Reply(501, "Authentication cancelled", "5.7.0"), "AUTH cancelled by the client")]
        return [self._auth_step(text or "=")]

    def _auth_step(self, response: str) -> Event:
        try:
            decoded = decode_base64(response)
        except ValueError:
            return _violation(501, "5.5.2", "Cannot decode response (invalid base64, RFC 4954 4)")
        mechanism = self._auth_mechanism
        if mechanism == "PLAIN":
            try:
                authzid, authcid, password = decode_sasl_plain(decoded)
            except ValueError as exc:
                return _violation(501, "5.5.2", f"Invalid PLAIN response: {exc}")
            return AuthCredentials("PLAIN", authzid, authcid, password)
        try:
            text = decoded.decode("utf-8")
        except UnicodeDecodeError:
            return _violation(501, "5.5.2", "Invalid LOGIN response: not UTF-8")
        if self._auth_user is None:
            if not text:
                return _violation(501, "5.5.2", "Invalid LOGIN response: empty user name")
            self._auth_user = text
            return AuthRequest(Reply(334, _LOGIN_PASSWORD), "AUTH LOGIN password challenge", "LOGIN")
        return AuthCredentials("LOGIN", "", self._auth_user, text)

    # ------------------------------------------------------------------ output

    def send(self, reply: Reply) -> bytes:
        """Check ``reply`` against what is owed, apply its effect, return its bytes.

        A 2xx to ``Ehlo`` gets the capability lines appended; in a 2xx to ``Ehlo`` or
        ``Helo`` an empty text becomes our hostname. When the connection named the reply (``AutoReply``, an
        ``EndOfData``/``BdatChunk`` refusal), its code must be used; a 421 is legal in
        every state but ``CLOSING``/``CLOSED`` and leads to ``CLOSING``.

        Raises:
            LocalProtocolError: The reply is not legal now (no reply owed, a 354
                without an accepted recipient, a 250 to a refused message, ...); the
                state is unchanged.
        """
        state = self._state
        owed = self._owed if state is REPLY else None
        named = self._named_code(owed)
        row = reply_transition(state, owed, reply.code, named)
        if row is None:
            if state in (CLOSING, CLOSED):
                raise LocalProtocolError(f"cannot send a {reply.code} reply in state {state.name}: the session is over")
            if state is not REPLY and state is not GREETING:
                raise LocalProtocolError(f"cannot send a {reply.code} reply in state {state.name}: no reply is owed")
            what = "the greeting" if owed is None else type(owed).__name__
            need = f" (the connection requires {named})" if named is not None else ""
            raise LocalProtocolError(f"a {reply.code} reply to {what} is not legal in state {state.name}{need}")
        next_state, effect = row
        if effect is Effect.DATA_STARTED and not self._rcpts:
            raise LocalProtocolError("cannot send 354 in state REPLY: the transaction has no accepted recipient")
        if isinstance(owed, (Ehlo, Helo)) and reply.is_positive:
            first = reply.text if reply.text != ("",) else (self.hostname,)
            caps = self._capabilities() if isinstance(owed, Ehlo) else []
            reply = Reply(reply.code, [*first, *caps])
        enhanced = self.extensions.enhanced_status_codes and state is not GREETING and not isinstance(owed, (Ehlo, Helo))
        data = write_reply(reply, enhanced=enhanced)
        if state is GREETING:
            self._early_talker = bool(self._buf)
        _EFFECTS[effect](self, owed)
        self._state = next_state
        self._owed = None
        return data

    @staticmethod
    def _named_code(owed: Event | None) -> int | None:
        if isinstance(owed, AutoReply):
            return owed.reply.code
        if isinstance(owed, (EndOfData, BdatChunk)) and owed.refusal is not None:
            return owed.refusal.code
        return None

    # ------------------------------------------------------------------ effects
    # One method per ``Effect``, found through ``_EFFECTS``; ``event`` is the event the
    # row was triggered by (received, or answered by the reply), ``None`` for a signal
    # or the greeting. Rows guarantee its type, so the asserts only inform mypy.

    def _no_effect(self, event: Event | None) -> None:
        pass

    def _greeting_refused(self, event: Event | None) -> None:
        self._refused = True

    def _ehlo_accepted(self, event: Event | None) -> None:
        assert isinstance(event, Ehlo)
        self._ehlo_name, self._esmtp = event.hostname, True

    def _helo_accepted(self, event: Event | None) -> None:
        assert isinstance(event, Helo)
        self._ehlo_name, self._esmtp = event.hostname, False

    def _tls_handoff(self, event: Event | None) -> None:
        self._discard_mark = self._buf.discarded
        self._buf.discard_all()  # RFC 3207 5, CVE-2011-0411: never parse it

    def _auth_ended(self, event: Event | None) -> None:
        self._auth_mechanism = self._auth_user = None

    def _authenticated_as(self, event: Event | None) -> None:
        assert isinstance(event, AuthCredentials)
        self._authenticated = event.authcid
        self._auth_mechanism = self._auth_user = None

    def _transaction_started(self, event: Event | None) -> None:
        assert isinstance(event, MailFrom)
        self._clear_transaction()
        self._mail = event

    def _recipient_accepted(self, event: Event | None) -> None:
        assert isinstance(event, RcptTo)
        self._rcpts.append(event.forward_path)

    def _data_started(self, event: Event | None) -> None:
        self._method = "DATA"
        self._reader = DataReader(self._new_body())

    def _transaction_ended(self, event: Event | None) -> None:
        self._clear_transaction()

    def _message_accepted(self, event: Event | None) -> None:
        self._clear_transaction()
        # Like Postfix's smtpd_hard_error_limit: the budget is for errors made
        # without delivering mail, so a long session that keeps delivering is
        # not ended by the occasional fault, while NOOPs do not refill it.
        self._errors = 0

    def _reader_done(self, event: Event | None) -> None:
        self._reader = None  # the message or chunk it read is complete (or the peer left)

    def _session_reset(self, event: Event | None) -> None:
        # RFC 3207 4.2: a new EHLO is required and authentication is forgotten.
        self._buf.discard_all()  # RFC 3207 5, CVE-2011-0411
        self._tls = True
        self._ehlo_name = None
        self._esmtp = False
        self._authenticated = None
        self._clear_transaction()

    def _close(self, event: Event | None) -> None:
        self._pending.clear()

    def _capabilities(self) -> list[str]:
        ext = self.extensions
        caps = []
        if ext.pipelining:
            caps.append("PIPELINING")
        if ext.size:
            caps.append(f"SIZE {self.limits.max_message_size}")
        if ext.eightbitmime:
            caps.append("8BITMIME")
        if ext.smtputf8:
            caps.append("SMTPUTF8")
        if ext.chunking:
            caps.append("CHUNKING")
        if ext.enhanced_status_codes:
            caps.append("ENHANCEDSTATUSCODES")
        if ext.starttls and not self._tls:
            caps.append("STARTTLS")
        if ext.auth and (self._tls or not self._auth_requires_tls):
            caps.append("AUTH " + " ".join(ext.auth))
        return caps

    def _new_body(self) -> BodyFilter:
        return BodyFilter(
            normalize=self._normalize,
            reject_long_lines=self._reject_long_lines,
            max_size=self.limits.max_message_size,
            max_line=self.limits.max_text_line,
        )

    def _clear_transaction(self) -> None:
        self._mail = None
        self._rcpts = []
        self._method = None
        self._body = None

    # ------------------------------------------------------------------ session

    def tls_established(self) -> int:
        """Call after the driver's TLS handshake following a 220 to STARTTLS.

        Drops every plaintext byte received since the STARTTLS line (RFC 3207 5,
        CVE-2011-0411) and resets the session: a new EHLO is required and
        authentication is forgotten (RFC 3207 4.2).

        Returns:
            Plaintext octets discarded since the STARTTLS line (also counted in
            ``session.plaintext_discarded``); non-zero means the client injected.

        Raises:
            LocalProtocolError: Not in state ``TLS_HANDOFF``.
        """
        if self._state is not TLS_HANDOFF:
            raise LocalProtocolError(f"tls_established() called in state {self._state.name}, not TLS_HANDOFF")
        self._transition(Signal.TLS_ESTABLISHED)
        return self._buf.discarded - self._discard_mark

    def set_authenticated(self, identity: str | None) -> None:
        """Record who the client is (after the caller's 235, or from a TLS client
        certificate); ``None`` forgets it. ``session.authenticated`` reports it."""
        self._authenticated = identity


#: ``Effect`` -> what it does to a ``ServerConnection`` (the rows are in ``_state.py``).
_EFFECTS: Final[dict[Effect, Callable[[ServerConnection, Event | None], None]]] = {
    Effect.NONE: ServerConnection._no_effect,
    Effect.GREETING_REFUSED: ServerConnection._greeting_refused,
    Effect.EHLO_ACCEPTED: ServerConnection._ehlo_accepted,
    Effect.HELO_ACCEPTED: ServerConnection._helo_accepted,
    Effect.TLS_HANDOFF: ServerConnection._tls_handoff,
    Effect.AUTH_CONTINUE: ServerConnection._no_effect,  # the reader for AUTH takes over
    Effect.AUTH_ENDED: ServerConnection._auth_ended,
    Effect.AUTHENTICATED: ServerConnection._authenticated_as,
    Effect.TRANSACTION_STARTED: ServerConnection._transaction_started,
    Effect.RECIPIENT_ACCEPTED: ServerConnection._recipient_accepted,
    Effect.RECIPIENT_REFUSED: ServerConnection._no_effect,  # client-side only
    Effect.DATA_STARTED: ServerConnection._data_started,
    Effect.TRANSACTION_ENDED: ServerConnection._transaction_ended,
    Effect.TRANSACTION_CLEARED: ServerConnection._transaction_ended,
    Effect.MESSAGE_ACCEPTED: ServerConnection._message_accepted,
    Effect.READER_DONE: ServerConnection._reader_done,
    Effect.SESSION_RESET: ServerConnection._session_reset,
    Effect.CLOSE: ServerConnection._close,
}
