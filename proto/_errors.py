"""The two ways a protocol exchange goes wrong, one exception per direction.

Strategy: as in h11, ``RemoteProtocolError`` means the peer broke the protocol and
``LocalProtocolError`` means our own code used the connection object wrongly. Both
carry ``reply_hint``, the reply that fits the situation, so the one place that
catches protocol errors knows what to answer before closing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._events import Reply

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base class of both protocol errors; never raised itself.

    Attributes:
        reply_hint: The reply that suits the error (``421 4.7.0`` for a peer that must
            be disconnected), or ``None`` when nothing should be sent.
    """

    def __init__(self, msg: str, *, reply_hint: Reply | None = None) -> None:
        if type(self) is ProtocolError:
            raise TypeError("raise LocalProtocolError or RemoteProtocolError")
        super().__init__(msg)
        self.reply_hint = reply_hint


class LocalProtocolError(ProtocolError):
    """Our code tried something the protocol forbids in the current state.

    Examples: a reply when none is owed, a 354 without an accepted recipient, a
    command the server did not offer. The connection's state is unchanged, so the
    caller may recover, but this is always a bug in the caller.
    """


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol in a way that ends the session.

    Raised by ``next_event()``; the connection is then in state ``ERROR`` and the
    only thing left to do is send ``reply_hint`` (a 421) and close. Recoverable
    faults (a bad command, a bad address) are not exceptions: the server side
    reports them as ``ProtocolViolation`` events carrying their reply.
    """
