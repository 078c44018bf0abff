"""States, the reply transition tables, and the session/transaction views.

Strategy: as in h11's ``_state.py``, every legal move is one row in a table keyed by
(what is owed a reply, the reply code). ``ServerConnection.send()`` and
``ClientConnection`` look the reply up and apply the row's ``Effect``; a reply with no
row is refused with ``LocalProtocolError`` naming the state. Codes are matched exactly
first, then by class (``"2xx"``), then ``"same"`` (the code the connection itself
named in an ``AutoReply``). A 421 is legal in any state but ``CLOSING``/``CLOSED``
(RFC 5321 3.8) and always leads to ``CLOSING``.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from ._events import (
    AuthCredentials,
    AuthRequest,
    AuthResponse,
    AutoReply,
    Bdat,
    BdatChunk,
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
    "Session",
    "State",
    "Transaction",
    "lookup",
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
    """What a (command, reply) pair does to the session or transaction."""

    NONE = enum.auto()
    GREETING_REFUSED = enum.auto()  # 554 greeting: only QUIT from now on (RFC 5321 3.1)
    EHLO_ACCEPTED = enum.auto()  # RFC 5321 4.1.4: also clears the transaction
    HELO_ACCEPTED = enum.auto()
    TLS_HANDOFF = enum.auto()  # discard buffered plaintext (RFC 3207 5)
    AUTH_CONTINUE = enum.auto()
    AUTH_ENDED = enum.auto()
    AUTHENTICATED = enum.auto()
    TRANSACTION_STARTED = enum.auto()
    RECIPIENT_ACCEPTED = enum.auto()
    RECIPIENT_REFUSED = enum.auto()
    DATA_STARTED = enum.auto()
    TRANSACTION_ENDED = enum.auto()
    CLOSE = enum.auto()


Key = tuple["type[Event] | None", "int | str"]
Row = tuple[State, Effect]

_ERRORS = ("4xx", "5xx")


def _rows(event: type[Event] | None, codes: tuple[int | str, ...], row: Row) -> dict[Key, Row]:
    return {(event, code): row for code in codes}


#: (event owed a reply, reply code) -> (next state, effect); ``None`` is the greeting.
SERVER_TRANSITIONS: Final[dict[Key, Row]] = {
    **_rows(None, (220,), (COMMAND, Effect.NONE)),
    **_rows(None, (554,), (COMMAND, Effect.GREETING_REFUSED)),
    **_rows(Ehlo, ("2xx",), (COMMAND, Effect.EHLO_ACCEPTED)),
    **_rows(Ehlo, _ERRORS, (COMMAND, Effect.NONE)),
    **_rows(Helo, ("2xx",), (COMMAND, Effect.HELO_ACCEPTED)),
    **_rows(Helo, _ERRORS, (COMMAND, Effect.NONE)),
    **_rows(StartTLS, (220,), (TLS_HANDOFF, Effect.TLS_HANDOFF)),
    **_rows(StartTLS, _ERRORS, (COMMAND, Effect.NONE)),
    **_rows(AuthRequest, (334,), (AUTH, Effect.AUTH_CONTINUE)),
    **_rows(AuthRequest, _ERRORS, (COMMAND, Effect.AUTH_ENDED)),
    **_rows(AuthCredentials, (235,), (COMMAND, Effect.AUTHENTICATED)),
    **_rows(AuthCredentials, _ERRORS, (COMMAND, Effect.AUTH_ENDED)),
    **_rows(MailFrom, ("2xx",), (COMMAND, Effect.TRANSACTION_STARTED)),
    **_rows(MailFrom, _ERRORS, (COMMAND, Effect.NONE)),
    **_rows(RcptTo, ("2xx",), (COMMAND, Effect.RECIPIENT_ACCEPTED)),
    **_rows(RcptTo, _ERRORS, (COMMAND, Effect.NONE)),
    **_rows(DataStart, (354,), (DATA, Effect.DATA_STARTED)),
    **_rows(DataStart, _ERRORS, (COMMAND, Effect.NONE)),
    # RFC 5321 4.1.1.4: whatever the reply to the end of data, the transaction is over.
    **_rows(EndOfData, ("2xx", *_ERRORS), (COMMAND, Effect.TRANSACTION_ENDED)),
    **_rows(BdatChunk, ("2xx",), (COMMAND, Effect.NONE)),
    # RFC 3030 2: after a failed chunk no more chunks of this message may follow.
    **_rows(BdatChunk, _ERRORS, (COMMAND, Effect.TRANSACTION_ENDED)),
    **_rows(Rset, ("2xx",), (COMMAND, Effect.NONE)),
    **_rows(Noop, ("2xx",), (COMMAND, Effect.NONE)),
    **_rows(Quit, (221,), (CLOSING, Effect.CLOSE)),
    **_rows(AutoReply, ("same",), (COMMAND, Effect.AUTH_ENDED)),
    **_rows(ProtocolViolation, ("same",), (COMMAND, Effect.AUTH_ENDED)),
}

#: (command sent, reply code) -> (next state, effect) on the client side.
CLIENT_TRANSITIONS: Final[dict[Key, Row]] = {
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


def lookup(table: dict[Key, Row], owed: Event | None, code: int, named: int | None) -> Row | None:
    """Find the row for replying ``code`` to ``owed``.

    Args:
        table: ``SERVER_TRANSITIONS`` or ``CLIENT_TRANSITIONS``.
        owed: The event the reply answers (``None``: the greeting).
        code: The reply code.
        named: A code the connection itself required (``AutoReply.reply.code``,
            ``EndOfData.refusal.code``), matched by the ``"same"`` rows.

    Returns:
        ``(next state, effect)``, or ``None`` if the reply is illegal.
    """
    if code == 421:
        return _CLOSE
    kind = None if owed is None else type(owed)
    row = table.get((kind, code)) or table.get((kind, _CLASS[code // 100]))
    if row is None and code == named:
        row = table.get((kind, "same"))
    return row


_CLOSE: Final[Row] = (CLOSING, Effect.CLOSE)
_CLASS: Final = {2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


@attrs.frozen
class Session:
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
