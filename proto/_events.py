"""Frozen values that cross the proto boundary: replies, events, sentinels.

Strategy: as in h11, one class per thing that happens on the wire, named after it
(RFC vocabulary: ``reverse_path``, ``forward_path``, ``EndOfData``). The server side
emits them from ``next_event()``; the client side sends the command ones with
``send()`` and receives ``ServerReply``. Events carry facts; they hold no behaviour.
"""

from __future__ import annotations

import enum
import re
import types
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from ._syntax import Address

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "AuthCredentials",
    "AuthRequest",
    "AuthResponse",
    "AutoReply",
    "Bdat",
    "BdatChunk",
    "ConnectionClosed",
    "Data",
    "DataStart",
    "Ehlo",
    "EndOfData",
    "Event",
    "Helo",
    "MailFrom",
    "Noop",
    "ProtocolViolation",
    "Quit",
    "RcptTo",
    "Reply",
    "Rset",
    "Sentinel",
    "ServerReply",
    "StartTLS",
]


class Sentinel(enum.Enum):
    """The two non-event results of ``next_event()``."""

    #: Nothing complete is buffered: call ``receive_data()`` with more bytes.
    NEED_DATA = "NEED_DATA"
    #: We owe the peer something (a reply, the greeting, a TLS handshake) before the
    #: next input may be parsed; pipelined input waits in the buffer.
    PAUSED = "PAUSED"


NEED_DATA: Final = Sentinel.NEED_DATA
PAUSED: Final = Sentinel.PAUSED

_ENHANCED = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}")


def _reply_lines(text: str | Sequence[str]) -> tuple[str, ...]:
    lines = (text,) if isinstance(text, str) else tuple(text)
    return lines or ("",)


def _check_reply(instance: Reply, attribute: object, enhanced: str | None) -> None:
    # One validator for the three fields (on the last, so all are set): a Reply is
    # built for every reply sent, and each validator is a call.
    code = instance.code
    if not 200 <= code <= 599:
        raise ValueError(f"reply code {code} is not in 200..599 (RFC 5321 4.2)")
    for line in instance.text:
        if not line.isprintable():
            raise ValueError(f"reply text {line!r} holds a line break or control character")
    if enhanced is None:
        return
    if not _ENHANCED.fullmatch(enhanced):
        raise ValueError(f"enhanced status code {enhanced!r} is not class.subject.detail (RFC 3463)")
    if enhanced[0] != str(code)[0]:
        raise ValueError(f"enhanced status code {enhanced} does not match reply code {code}")


@attrs.frozen
class Reply:
    """An SMTP reply (RFC 5321 4.2), one or more lines with one code.

    Attributes:
        code: The three-digit reply code, 200..599.
        text: The text lines; a ``str`` is one line. Each line must be printable: line
            breaks are how replies are framed, so they cannot be in the text.
        enhanced: An RFC 3463 status code such as ``"5.7.8"``; its class must match the
            code's first digit. Written only when ENHANCEDSTATUSCODES is offered.

    Raises:
        ValueError: A code, text line or enhanced code that cannot go on the wire.
    """

    code: int
    text: tuple[str, ...] = attrs.field(default=("",), converter=_reply_lines)
    enhanced: str | None = attrs.field(default=None, validator=_check_reply)

    @property
    def is_positive(self) -> bool:
        """2xx: the command was accepted."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """3xx: more input is expected (354, 334)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """4xx: refused for now; retrying later may work."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5xx: refused for good."""
        return 500 <= self.code < 600


@attrs.frozen
class Event:
    """Base class of everything ``next_event()`` returns (besides the sentinels)."""


@attrs.frozen
class Ehlo(Event):
    """``EHLO <hostname>`` (RFC 5321 4.1.1.1); a 250 gets the capability lines appended."""

    hostname: str


@attrs.frozen
class Helo(Event):
    """``HELO <hostname>`` (RFC 5321 4.1.1.1): a session without service extensions."""

    hostname: str


@attrs.frozen
class StartTLS(Event):
    """``STARTTLS`` (RFC 3207). Answer 220 to hand the stream to TLS, or 454."""


@attrs.frozen
class AutoReply(Event):
    """The connection decided the reply itself; the caller must send ``reply``.

    The caller may change the text but not the code; a 421 is always allowed instead.
    Used as is for VRFY (252), HELP (214) and a cancelled AUTH (501).

    Attributes:
        reply: What to send.
        reason: A short description for logs.
    """

    reply: Reply
    reason: str


@attrs.frozen
class ProtocolViolation(AutoReply):
    """The peer broke the protocol in a way the session survives (bad sequence,
    syntax, unknown command, line too long, too many recipients, ...).

    Each one counts towards ``Limits.max_errors``.
    """


@attrs.frozen
class AuthRequest(AutoReply):
    """An AUTH exchange needs a 334 challenge sent (RFC 4954 4).

    The connection drives PLAIN and LOGIN itself: send ``reply`` (a 334) to go on,
    or a 4xx/5xx (454, 535, ...) to refuse; the exchange ends with ``AuthCredentials``.
    """

    mechanism: str


@attrs.frozen
class AuthCredentials(Event):
    """A complete AUTH PLAIN or LOGIN exchange (RFC 4954, RFC 4616).

    The server side yields it for the caller to verify and answer 235 (then
    ``session.authenticated`` is ``authcid``), 535 5.7.8 or 454 4.7.0. The client
    side sends it to authenticate.

    Attributes:
        mechanism: ``"PLAIN"`` or ``"LOGIN"``.
        authzid: The authorization identity (PLAIN only; ``""`` when absent).
        authcid: The authentication identity, the user name.
        password: The password; never shown by ``repr()``.
    """

    mechanism: str
    authzid: str
    authcid: str
    password: str = attrs.field(repr=False)


@attrs.frozen
class AuthResponse(Event):
    """Client side only: answer a 334 challenge; the connection fills in the content
    (user name or password) from the ``AuthCredentials`` it was given."""


def _freeze_params(params: Mapping[str, str | None]) -> Mapping[str, str | None]:
    return types.MappingProxyType(dict(params))


@attrs.frozen
class MailFrom(Event):
    """``MAIL FROM:<reverse-path> [params]`` (RFC 5321 4.1.1.2).

    Attributes:
        reverse_path: The sender, or ``None`` for the null path ``<>`` (bounces).
        params: ESMTP parameters, upper-cased keyword to value (``None`` if valueless).
            The server side has already checked them: only SIZE (RFC 1870), BODY
            (RFC 6152) and SMTPUTF8 (RFC 6531) get through, and only when offered.
    """

    reverse_path: Address | None
    params: Mapping[str, str | None] = attrs.field(
        factory=dict, converter=_freeze_params, hash=False
    )

    @property
    def size(self) -> int | None:
        """The declared message size (RFC 1870), if given."""
        value = self.params.get("SIZE")
        return int(value) if value else None

    @property
    def body(self) -> str | None:
        """``"7BIT"`` or ``"8BITMIME"`` (RFC 6152), if given."""
        value = self.params.get("BODY")
        return value.upper() if value else None

    @property
    def smtputf8(self) -> bool:
        """The SMTPUTF8 parameter was given (RFC 6531 3.4)."""
        return "SMTPUTF8" in self.params


@attrs.frozen
class RcptTo(Event):
    """``RCPT TO:<forward-path> [params]`` (RFC 5321 4.1.1.3).

    Answer 250 to accept the recipient, 550/450/... to refuse it. ``<postmaster>``
    arrives as ``Address("postmaster", "")``.
    """

    forward_path: Address
    params: Mapping[str, str | None] = attrs.field(
        factory=dict, converter=_freeze_params, hash=False
    )


@attrs.frozen
class DataStart(Event):
    """``DATA`` with a transaction that has a recipient: answer 354 or refuse."""


@attrs.frozen
class Data(Event):
    """A piece of the message body, dot-unstuffed, line ends all CRLF.

    Chunk boundaries follow the input and mean nothing. After the message is known
    to be refused (oversize, or a bare line ending under the ``reject`` policy) no more
    ``Data`` comes; the end event says why. Needs no reply.
    """

    data: bytes


@attrs.frozen
class EndOfData(Event):
    """The end of a message: ``<CRLF>.<CRLF>`` after DATA, or ``BDAT ... LAST``.

    Answer 250 (accepted), or a 4xx/5xx; either way the transaction is over. When
    ``refusal`` is set the message broke a rule and that is the reply to send
    (a 2xx raises ``LocalProtocolError``).

    Attributes:
        size: Body octets after unstuffing and normalization.
        bare_line_endings_seen: A CR or LF not part of a CRLF was in the body.
        oversize: The body exceeded ``Limits.max_message_size`` (RFC 1870).
        line_too_long: A line exceeded ``Limits.max_text_line`` (RFC 5321 4.5.3.1.6);
            reported under either ``long_line_policy``, a refusal only under ``reject``.
        refusal: The reply the connection requires, or ``None``.
    """

    size: int = 0
    bare_line_endings_seen: bool = False
    oversize: bool = False
    line_too_long: bool = False
    refusal: Reply | None = None


@attrs.frozen
class Bdat(Event):
    """Client side only: send ``BDAT <len(data)> [LAST]`` and the octets (RFC 3030)."""

    data: bytes
    last: bool = False


@attrs.frozen
class BdatChunk(Event):
    """A ``BDAT <size>`` chunk without LAST was read (RFC 3030 2); its content came
    as ``Data`` events. Answer 250, or a 4xx/5xx, which ends the transaction;
    ``refusal`` works as in ``EndOfData``.
    """

    size: int
    refusal: Reply | None = None


@attrs.frozen
class Rset(Event):
    """``RSET`` (RFC 5321 4.1.1.5): the transaction is already cleared; answer 250."""


@attrs.frozen
class Noop(Event):
    """``NOOP`` (RFC 5321 4.1.1.9): answer 250."""


@attrs.frozen
class Quit(Event):
    """``QUIT`` (RFC 5321 4.1.1.10): answer 221, then close."""


@attrs.frozen
class ConnectionClosed(Event):
    """The peer closed its side (``receive_data(b"")``). Anything incomplete — a
    half line, an unfinished message — is dropped. Needs no reply."""


@attrs.frozen
class ServerReply(Event):
    """Client side: a reply and the command it answers.

    Attributes:
        command: The command event it answers; ``None`` for the greeting.
        reply: The parsed reply.
    """

    command: Event | None
    reply: Reply

