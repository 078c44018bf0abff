"""States, the transition tables, and the session/transaction views.

Strategy: as in h11's ``_state.py``, every legal move is one row in one table.
``SERVER_TRANSITIONS`` is keyed by (state, trigger), the trigger being an event
received from the peer (its type), a ``Signal`` (a BDAT line, the peer closing, a
fatal fault, the TLS handshake done) or a reply we send (``Sent(owed event type,
code)``); a row gives the next state and an ``Effect``. ``ServerConnection`` changes
its state only through it, and a trigger with no row raises ``LocalProtocolError``
naming the state (a reply is refused and the state is unchanged). Reply codes are
matched by the ``ANY`` rows first (a 421 is legal in every state but
``CLOSING``/``CLOSED``, RFC 5321 3.8, and always leads to ``CLOSING``), then by
``"same"`` when the connection named the code itself (``AutoReply``, a refused
message), then exactly, then by class (``"2xx"``). ``CLIENT_TRANSITIONS`` is keyed by
(command sent, reply code) the same way, its 421 row first too."""

from __future__ import annotations

import enum
from typing import Any, Final, NamedTuple

import attrs

from ._events import (
    AuthCredentials,
    AuthRequest,
    AuthResponse,
    AutoReply,
    Bdat,
    BdatChunk,
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
    Rset,
    StartTLS,
)
from ._syntax import Address

__all__ = [
    "ANY",
    "AUTH",
    "BDAT",
    "CLIENT_TRANSITIONS",
    "CLOSED",
    "CLOSING",
    "COMMAND",
    "DATA",
    "ERROR",
    "GREETING",
    "REPLY",
    "SERVER_TRANSITIONS",
    "TLS_HANDOFF",
    "Effect",
    "Extensions",
    "Limits",
    "Sent",
    "SessionFacts",
    "Signal",
    "State",
    "Transaction",
    "lookup",
    "reply_transition",
    "transition",
]


class State(enum.Enum):
    """Where a connection is. Client-side meanings are given where they differ."""

    #: New connection. Server: send the greeting (220, or 554 to refuse the session,
    #: RFC 5321 3.1). Client: waiting for the server's greeting.
    GREETING = "GREETING"
    #: Server: waiting for a command line. Client: free to send a command.
    COMMAND = "COMMAND"
    #: Server: an event is owed a reply; pipelined input waits (``PAUSED``).
    #: Client: replies are outstanding; with PIPELINING more commands may follow.
    REPLY = "REPLY"
    #: Server: a 334 challenge was sent; the next line is an AUTH response (RFC 4954).
    #: Client: a 334 arrived; send ``AuthResponse``.
    AUTH = "AUTH"
    #: Server: 354 sent; reading the message up to ``<CRLF>.<CRLF>`` (RFC 5321 4.1.1.4).
    #: Client: 354 arrived; send ``Data`` pieces and ``EndOfData``.
    DATA = "DATA"
    #: Server: reading the octets of a BDAT chunk (RFC 3030). Not used by the client.
    BDAT = "BDAT"
    #: A 220 answered STARTTLS: the driver must run the TLS handshake and then call
    #: ``tls_established()``. Plaintext buffered after the STARTTLS exchange is
    #: discarded, never parsed (RFC 3207 5, CVE-2011-0411).
    TLS_HANDOFF = "TLS_HANDOFF"
    #: A 221 or 421 was sent (server) or received (client): close the stream.
    CLOSING = "CLOSING"
    #: The peer closed its side.
    CLOSED = "CLOSED"
    #: ``RemoteProtocolError`` was raised: send its ``reply_hint`` and close.
    ERROR = "ERROR"

    # Members are singletons compared by identity: hash them by identity too (C speed;
    # Enum's own __hash__ is Python code), as every event and reply looks one up.
    __hash__ = object.__hash__


GREETING: Final = State.GREETING
COMMAND: Final = State.COMMAND
REPLY: Final = State.REPLY
AUTH: Final = State.AUTH
DATA: Final = State.DATA
BDAT: Final = State.BDAT
TLS_HANDOFF: Final = State.TLS_HANDOFF
CLOSING: Final = State.CLOSING
CLOSED: Final = State.CLOSED
ERROR: Final = State.ERROR


class Effect(enum.Enum):
    """What a transition does besides changing the state.

    The server looks each up in ``ServerConnection``'s effect table (one small
    function per member); the client in ``ClientConnection._complete``.
    """

    NONE = enum.auto()
    GREETING_REFUSED = enum.auto()  # 554 greeting: only QUIT from now on (RFC 5321 3.1)
    EHLO_ACCEPTED = enum.auto()  # client: also clears the transaction (RFC 5321 4.1.4)
    HELO_ACCEPTED = enum.auto()
    TLS_HANDOFF = enum.auto()  # discard buffered plaintext (RFC 3207 5)
    AUTH_CONTINUE = enum.auto()  # a 334: the next line is an AUTH response (RFC 4954 4)
    AUTH_ENDED = enum.auto()  # the AUTH exchange in progress, if any, is over
    AUTHENTICATED = enum.auto()
    TRANSACTION_STARTED = enum.auto()
    RECIPIENT_ACCEPTED = enum.auto()
    RECIPIENT_REFUSED = enum.auto()
    DATA_STARTED = enum.auto()
    TRANSACTION_ENDED = enum.auto()
    CLOSE = enum.auto()
    # Server only:
    #: EHLO/HELO (RFC 5321 4.1.4) or RSET (4.1.1.5) arrived: no transaction from now on.
    TRANSACTION_CLEARED = enum.auto()
    #: The DATA or BDAT reader handed out its last event (or the peer closed mid-read).
    READER_DONE = enum.auto()
    #: A 2xx to the end of data: the transaction is over and the error budget refills
    #: (like Postfix's smtpd_hard_error_limit, the budget is for errors made without
    #: delivering mail).
    MESSAGE_ACCEPTED = enum.auto()
    #: ``tls_established()``: RFC 3207 4.2, the session starts again under TLS.
    SESSION_RESET = enum.auto()


class Signal(enum.Enum):
    """Server-side triggers that are neither an event nor a reply."""

    #: A BDAT command line was read: its octets follow (RFC 3030 2).
    BDAT_CHUNK = "BDAT_CHUNK"
    #: The peer closed (``receive_data(b"")``) and nothing complete is left to parse.
    PEER_CLOSED = "PEER_CLOSED"
    #: ``RemoteProtocolError`` is raised: too many errors, or HTTP on the SMTP port.
    PEER_BROKE = "PEER_BROKE"
    #: ``tls_established()``: the driver finished the handshake after a 220 to STARTTLS.
    TLS_ESTABLISHED = "TLS_ESTABLISHED"

    __hash__ = object.__hash__  # as State's


class Anything(enum.Enum):
    """``ANY`` in a ``Sent`` trigger: whatever is owed a reply, or nothing."""

    ANY = "ANY"

    __hash__ = object.__hash__  # as State's


ANY: Final = Anything.ANY


class Sent(NamedTuple):
    """The trigger "we send a reply": to ``owed`` with ``code``.

    Attributes:
        owed: The type of the event the reply answers; ``None`` is the greeting,
            ``ANY`` whatever is owed (or nothing).
        code: An exact code (``250``), a class (``"2xx"``), or ``"same"``: the code
            the connection itself named (``AutoReply.reply``, an ``EndOfData`` or
            ``BdatChunk`` refusal). Where a ``"same"`` row exists and a code was
            named, only that code is legal (and a 421).
    """

    owed: type[Event] | Anything | None
    code: int | str


Key = tuple["type[Event] | Anything | None", "int | str"]
Row = tuple[State, Effect]
ServerKey = tuple[State, "type[Event] | Signal | Sent"]

_ERRORS = ("4xx", "5xx")


def _rows(event: type[Event] | Anything | None, codes: tuple[int | str, ...], row: Row) -> dict[Key, Row]:
    return {(event, code): row for code in codes}


def _sent(
    state: State, owed: type[Event] | Anything | None, codes: tuple[int | str, ...], row: Row
) -> dict[ServerKey, Row]:
    return {(state, Sent(owed, code)): row for code in codes}


def _received(states: tuple[State, ...], events: tuple[type[Event], ...], row: Row) -> dict[ServerKey, Row]:
    return {(state, event): row for state in states for event in events}


def _signal(states: tuple[State, ...], signal: Signal, row: Row) -> dict[ServerKey, Row]:
    return {(state, signal): row for state in states}


#: Where the server reads input (``next_event()`` runs a reader).
_READING = (COMMAND, AUTH, DATA, BDAT)
#: Where a reply may still be sent.
_OPEN = (GREETING, COMMAND, REPLY, AUTH, DATA, BDAT, TLS_HANDOFF, ERROR)
_COMMANDS: tuple[type[Event], ...] = (
    MailFrom, RcptTo, DataStart, StartTLS, AuthRequest, AuthCredentials, Noop, Quit, AutoReply,
)
#: Every event but ``Data`` is owed a reply: it moves the connection to ``REPLY``,
#: where pipelined input waits (RFC 2920 3.1).
_OWED = (REPLY, Effect.NONE)

#: (state, trigger) -> (next state, effect): every move the server makes.
#: ``ServerConnection`` changes its state only through this table; a trigger with no
#: row raises ``LocalProtocolError`` (for a reply: the reply is refused, state unchanged).
SERVER_TRANSITIONS: Final[dict[ServerKey, Row]] = {
    # ---- events received (``next_event()``) ------------------------------------
    # RFC 5321 4.1.4 / 4.1.1.5: EHLO, HELO and RSET end the transaction as they arrive.
    **_received((COMMAND,), (Ehlo, Helo, Rset), (REPLY, Effect.TRANSACTION_CLEARED)),
    **_received((COMMAND,), (*_COMMANDS, ProtocolViolation), _OWED),
    # RFC 4954 4: in an AUTH exchange a line is a response, "*", or a fault.
    **_received((AUTH,), (AuthRequest, AuthCredentials, AutoReply, ProtocolViolation), _OWED),
    **_received((DATA,), (Data,), (DATA, Effect.NONE)),
    **_received((DATA,), (EndOfData,), (REPLY, Effect.READER_DONE)),
    **_received((BDAT,), (Data,), (BDAT, Effect.NONE)),
    # A chunk, the LAST chunk, or a chunk refused before it was read (RFC 3030 2).
    **_received((BDAT,), (BdatChunk, EndOfData, ProtocolViolation), (REPLY, Effect.READER_DONE)),
    # ---- signals -----------------------------------------------------------------
    **_signal((COMMAND,), Signal.BDAT_CHUNK, (BDAT, Effect.NONE)),
    **_signal(_READING, Signal.PEER_CLOSED, (CLOSED, Effect.READER_DONE)),
    **_signal(_READING, Signal.PEER_BROKE, (ERROR, Effect.NONE)),
    **_signal((TLS_HANDOFF,), Signal.TLS_ESTABLISHED, (COMMAND, Effect.SESSION_RESET)),
    # ---- replies sent (``send()``) -------------------------------------------------
    # RFC 5321 3.8: a 421 may be sent at any time the session is open (a timeout mid-DATA,
    # shutdown, the reply_hint in ERROR) and always ends it. These rows are consulted
    # before any other, so a 421 never matches a "4xx" row below.
    **{(state, Sent(ANY, 421)): (CLOSING, Effect.CLOSE) for state in _OPEN},
    **_sent(GREETING, None, (220,), (COMMAND, Effect.NONE)),
    **_sent(GREETING, None, (554,), (COMMAND, Effect.GREETING_REFUSED)),
    **_sent(REPLY, Ehlo, ("2xx",), (COMMAND, Effect.EHLO_ACCEPTED)),
    **_sent(REPLY, Ehlo, _ERRORS, (COMMAND, Effect.NONE)),
    **_sent(REPLY, Helo, ("2xx",), (COMMAND, Effect.HELO_ACCEPTED)),
    **_sent(REPLY, Helo, _ERRORS, (COMMAND, Effect.NONE)),
    **_sent(REPLY, StartTLS, (220,), (TLS_HANDOFF, Effect.TLS_HANDOFF)),
    **_sent(REPLY, StartTLS, _ERRORS, (COMMAND, Effect.NONE)),
    **_sent(REPLY, AuthRequest, (334,), (AUTH, Effect.AUTH_CONTINUE)),
    **_sent(REPLY, AuthRequest, _ERRORS, (COMMAND, Effect.AUTH_ENDED)),
    **_sent(REPLY, AuthCredentials, (235,), (COMMAND, Effect.AUTHENTICATED)),
    **_sent(REPLY, AuthCredentials, _ERRORS, (COMMAND, Effect.AUTH_ENDED)),
    **_sent(REPLY, MailFrom, ("2xx",), (COMMAND, Effect.TRANSACTION_STARTED)),
    **_sent(REPLY, MailFrom, _ERRORS, (COMMAND, Effect.NONE)),
    **_sent(REPLY, RcptTo, ("2xx",), (COMMAND, Effect.RECIPIENT_ACCEPTED)),
    **_sent(REPLY, RcptTo, _ERRORS, (COMMAND, Effect.NONE)),
    # A 354 also needs an accepted recipient (checked by send()).
    **_sent(REPLY, DataStart, (354,), (DATA, Effect.DATA_STARTED)),
    **_sent(REPLY, DataStart, _ERRORS, (COMMAND, Effect.NONE)),
    # RFC 5321 4.1.1.4: whatever the reply to the end of data, the transaction is over.
    **_sent(REPLY, EndOfData, ("2xx",), (COMMAND, Effect.MESSAGE_ACCEPTED)),
    **_sent(REPLY, EndOfData, _ERRORS, (COMMAND, Effect.TRANSACTION_ENDED)),
    # A message proto refused (over SIZE, bare CR/LF, a long line): only its refusal.
    **_sent(REPLY, EndOfData, ("same",), (COMMAND, Effect.TRANSACTION_ENDED)),
    **_sent(REPLY, BdatChunk, ("2xx",), (COMMAND, Effect.NONE)),
    # RFC 3030 2: after a failed chunk no more chunks of this message may follow.
    **_sent(REPLY, BdatChunk, _ERRORS, (COMMAND, Effect.TRANSACTION_ENDED)),
    **_sent(REPLY, BdatChunk, ("same",), (COMMAND, Effect.TRANSACTION_ENDED)),
    **_sent(REPLY, Rset, ("2xx",), (COMMAND, Effect.NONE)),
    **_sent(REPLY, Noop, ("2xx",), (COMMAND, Effect.NONE)),
    **_sent(REPLY, Quit, (221,), (CLOSING, Effect.CLOSE)),
    # What proto answered itself (VRFY, HELP, too many recipients, AUTH cancelled with
    # "*") is sent with the code proto named.
    **_sent(REPLY, AutoReply, ("same",), (COMMAND, Effect.AUTH_ENDED)),
    # A protocol violation: the code proto named. It ends any AUTH exchange in progress
    # (RFC 4954 4: a response that cannot be decoded fails the AUTH command, and the
    # next line is a command again); outside AUTH there is none, so AUTH_ENDED is a
    # no-op there. The same holds for the AutoReply row above ("*" cancels, RFC 4954 4).
    **_sent(REPLY, ProtocolViolation, ("same",), (COMMAND, Effect.AUTH_ENDED)),
}

#: (command sent, reply code) -> (next state, effect) on the client side.
CLIENT_TRANSITIONS: Final[dict[Key, Row]] = {
    # RFC 5321 3.8: the server may answer anything with 421 and close; consulted first.
    **_rows(ANY, (421,), (CLOSING, Effect.CLOSE)),
    **_rows(None, (220,), (COMMAND, Effect.NONE)),
    **_rows(None, _ERRORS, (COMMAND, Effect.GREETING_REFUSED)),
    **_rows(Ehlo, ("2xx",), (COMMAND, Effect.EHLO_ACCEPTED)),
    **_rows(Ehlo, _ERRORS, (COMMAND, Effect.NONE)),
    **_rows(Helo, ("2xx",), (COMMAND, Effect.HELO_ACCEPTED)),
    **_rows(Helo, _ERRORS, (COMMAND, Effect.NONE)),
    **_rows(StartTLS, (220,), (TLS_HANDOFF, Effect.TLS_HANDOFF)),
    **_rows(StartTLS, _ERRORS, (COMMAND, Effect.NONE)),
    **_rows(AuthCredentials, (334,), (AUTH, Effect.AUTH_CONTINUE)),
    **_rows(AuthCredentials, (235,), (COMMAND, Effect.AUTHENTICATED)),
    **_rows(AuthCredentials, _ERRORS, (COMMAND, Effect.AUTH_ENDED)),
    **_rows(AuthResponse, (334,), (AUTH, Effect.AUTH_CONTINUE)),
    **_rows(AuthResponse, (235,), (COMMAND, Effect.AUTHENTICATED)),
    **_rows(AuthResponse, _ERRORS, (COMMAND, Effect.AUTH_ENDED)),
    **_rows(MailFrom, ("2xx",), (COMMAND, Effect.TRANSACTION_STARTED)),
    **_rows(MailFrom, _ERRORS, (COMMAND, Effect.NONE)),
    **_rows(RcptTo, ("2xx",), (COMMAND, Effect.RECIPIENT_ACCEPTED)),
    **_rows(RcptTo, _ERRORS, (COMMAND, Effect.RECIPIENT_REFUSED)),
    **_rows(DataStart, (354,), (DATA, Effect.DATA_STARTED)),
    **_rows(DataStart, _ERRORS, (COMMAND, Effect.NONE)),
    **_rows(EndOfData, ("2xx", *_ERRORS), (COMMAND, Effect.TRANSACTION_ENDED)),
    **_rows(Bdat, ("2xx",), (COMMAND, Effect.NONE)),
    **_rows(Bdat, _ERRORS, (COMMAND, Effect.TRANSACTION_ENDED)),
    **_rows(Rset, ("2xx", *_ERRORS), (COMMAND, Effect.TRANSACTION_ENDED)),
    **_rows(Noop, ("2xx", *_ERRORS), (COMMAND, Effect.NONE)),
    **_rows(Quit, ("2xx", *_ERRORS), (CLOSING, Effect.CLOSE)),
}


def lookup(table: dict[Key, Row], owed: Event | None, code: int) -> Row | None:
    """Find the client-side row for a reply ``code`` to the command ``owed``.

    ``(ANY, code)`` rows (the 421) come first, then the exact code, then its class.

    Returns:
        ``(next state, effect)``, or ``None`` if the reply is unexpected.
    """
    kind = None if owed is None else type(owed)
    return table.get((ANY, code)) or table.get((kind, code)) or table.get((kind, _CLASS.get(code // 100, "")))


def transition(state: State, trigger: type[Event] | Signal) -> Row | None:
    """The server's row for an event received or a ``Signal`` in ``state``, or ``None``."""
    return SERVER_TRANSITIONS.get((state, trigger))


def reply_transition(state: State, owed: Event | None, code: int, named: int | None) -> Row | None:
    """The server's row for sending a reply ``code`` in ``state``.

    Args:
        state: The current state.
        owed: The event the reply answers (``None``: the greeting, or nothing owed).
        code: The reply code.
        named: A code the connection itself required (``AutoReply.reply.code``,
            ``EndOfData.refusal.code``), matched by the ``"same"`` rows.

    Returns:
        ``(next state, effect)``, or ``None`` if the reply is illegal. Rows for ``ANY``
        (the 421) come first; where a ``"same"`` row exists and a code was named, only
        that code is legal; otherwise the exact code, then its class.
    """
    # Plain tuples equal (and hash like) the ``Sent`` keys and are cheaper to build.
    table: dict[Any, Row] = SERVER_TRANSITIONS
    row = table.get((state, (ANY, code)))
    if row is not None:
        return row
    kind = None if owed is None else type(owed)
    if named is not None:
        same = table.get((state, (kind, "same")))
        if same is not None:
            return same if code == named else None
    return table.get((state, (kind, code))) or table.get((state, (kind, _CLASS.get(code // 100, ""))))


_CLASS: Final = {2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


@attrs.frozen
class SessionFacts:
    """What holds for the whole session (until STARTTLS resets it, RFC 3207 4.2).

    Attributes:
        ehlo_name: The client's EHLO/HELO argument, once answered with 250.
        esmtp: The session began with EHLO, so service extensions apply.
        tls: TLS is active (``tls_active=True`` or after ``tls_established()``).
        authenticated: The identity set by a 235 (the ``authcid``) or by
            ``set_authenticated()``; ``None`` if not authenticated.
        early_talker: The client sent bytes before the greeting (RFC 5321 3.1 says
            it must wait).
        plaintext_discarded: Octets received after STARTTLS and thrown away.
        errors: Protocol violations so far (``Limits.max_errors`` caps them).
    """

    ehlo_name: str | None = None
    esmtp: bool = False
    tls: bool = False
    authenticated: str | None = None
    early_talker: bool = False
    plaintext_discarded: int = 0
    errors: int = 0


@attrs.frozen
class Transaction:
    """The mail transaction so far (RFC 5321 3.3), from (command, 2xx reply) pairs.

    Attributes:
        mail: The ``MailFrom`` that got a 2xx.
        forward_paths: Recipients that got a 2xx, in order.
        method: ``"DATA"`` or ``"BDAT"`` once the message has started, else ``None``.
    """

    mail: MailFrom
    forward_paths: tuple[Address, ...] = ()
    method: str | None = None

    @property
    def reverse_path(self) -> Address | None:
        """The sender; ``None`` is the null reverse-path ``<>``."""
        return self.mail.reverse_path


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, not {value}")


@attrs.frozen
class Limits:
    """Every bound proto enforces; each defaults to the RFC figure where there is one.

    Attributes:
        max_command_line: Octets in a command line, CRLF included (RFC 5321
            4.5.3.1.4: 512). Longer lines get 500 5.5.6 and are discarded as they
            arrive, never buffered.
        max_text_line: Octets in a message line, CRLF included, a dot added by
            dot-stuffing not counted (RFC 5321 4.5.3.1.6: 1000). Server side: under
            ``long_line_policy="reject"`` a longer line gets the message refused with
            500 5.5.6 at its end. Client side: under ``long_line_policy="split"``
            longer body lines are broken to fit.
        max_recipients: Accepted recipients per transaction (RFC 5321 4.5.3.1.8: at
            least 100 must be accepted); one more gets 452 4.5.3 (RFC 5321 4.5.3.1.10).
        max_message_size: Body octets (RFC 1870 4: advertised as ``SIZE``); a larger
            ``SIZE=`` gets 552 5.3.4, a larger body is read to its end, not kept, and
            refused with 552 5.3.4.
        max_errors: Protocol violations since the last accepted message before the
            next one ends the session with 421 4.7.0 (RFC 5321 7.8 leaves the defence
            against abuse to the server; Postfix's smtpd_hard_error_limit works alike).
        max_auth_line: Octets in an AUTH response line, CRLF included (RFC 4954 4:
            at least 12288).
        max_reply_line: Client side: octets in a reply line, CRLF included (RFC 5321
            4.5.3.1.5: 512). Longer lines raise ``RemoteProtocolError``.
        max_reply_lines: Client side: lines in one multi-line reply (no RFC limit;
            bounds memory).
    """

    max_command_line: int = attrs.field(default=512, validator=_positive)
    max_text_line: int = attrs.field(default=1000, validator=_positive)
    max_recipients: int = attrs.field(default=100, validator=_positive)
    max_message_size: int = attrs.field(default=26_214_400, validator=_positive)
    max_errors: int = attrs.field(default=10, validator=_positive)
    max_auth_line: int = attrs.field(default=12_288, validator=_positive)
    max_reply_line: int = attrs.field(default=512, validator=_positive)
    max_reply_lines: int = attrs.field(default=100, validator=_positive)


_MECHANISMS = frozenset({"PLAIN", "LOGIN"})


def _mechanisms(value: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    mechanisms = tuple(m.upper() for m in value)
    unknown = set(mechanisms) - _MECHANISMS
    if unknown:
        raise ValueError(f"unsupported AUTH mechanisms {sorted(unknown)}; proto drives PLAIN and LOGIN")
    return mechanisms


@attrs.frozen
class Extensions:
    """The service extensions a server offers in its EHLO reply.

    Attributes:
        starttls: STARTTLS (RFC 3207), offered until TLS is active.
        auth: AUTH mechanisms (RFC 4954), ``PLAIN`` and/or ``LOGIN``; ``()`` for none.
            Offered only under TLS when ``auth_requires_tls``.
        size: SIZE (RFC 1870), advertising ``Limits.max_message_size``.
        eightbitmime: 8BITMIME (RFC 6152): ``BODY=8BITMIME``.
        smtputf8: SMTPUTF8 (RFC 6531): internationalized addresses.
        pipelining: PIPELINING (RFC 2920). Pipelined input is always handled in order;
            this only says so in the EHLO reply.
        chunking: CHUNKING (RFC 3030): the BDAT command.
        enhanced_status_codes: ENHANCEDSTATUSCODES (RFC 2034): prefix replies with
            their RFC 3463 code.
    """

    starttls: bool = True
    auth: tuple[str, ...] = attrs.field(default=("PLAIN", "LOGIN"), converter=_mechanisms)
    size: bool = True
    eightbitmime: bool = True
    smtputf8: bool = True
    pipelining: bool = True
    chunking: bool = True
    enhanced_status_codes: bool = True
