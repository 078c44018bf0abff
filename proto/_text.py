"""Peer-controlled text on its way into reply text.

Strategy: reply text is printable US-ASCII (RFC 5321 4.2, ``textstring``) and a reply
line is at most 512 octets with its code and CRLF (RFC 5321 4.5.3.1.5). Whatever the
peer sent — a parameter, an address, a command line, a server's reply text on the
client side — reaches a ``Reply`` only through ``echo()``, which writes everything
outside printable ASCII as a backslash escape (``\\x13``, ``\\xe9``) and cuts the
result to a bound. So no input can make proto build a reply that ``Reply`` refuses or that
``write_reply`` cannot put on the wire; both would otherwise escape ``next_event()``
as ``ValueError`` / ``LocalProtocolError`` instead of a reply.
"""

from __future__ import annotations

__all__ = ["MAX_ECHO", "MAX_REPLY_TEXT", "echo"]

#: The most text one reply line can carry: RFC 5321 4.5.3.1.5's 512 octets less the
#: code and separator (``"550-"``), the longest RFC 3463 enhanced code with its space
#: (``"5.999.999 "``) and the CRLF.
MAX_REPLY_TEXT = 512 - 4 - 10 - 2

#: Characters of peer text quoted inside a reply (an address, a parameter): enough to
#: recognise it, short enough to leave room for the words around it.
MAX_ECHO = 100

_ELLIPSIS = "..."


def echo(text: str, *, limit: int = MAX_ECHO) -> str:
    """Make ``text`` safe to put in reply text: printable ASCII, at most ``limit`` chars.

    Characters outside printable ASCII become backslash escapes (``\\x13``,
    ``\\xe9``, ``\\u2028``, ``\\U0001f600``); text that would be longer than
    ``limit`` after escaping is cut, never inside an escape, and ends with ``...``.
    Safe text within the limit comes back unchanged, so ``echo(echo(t)) == echo(t)``.

    Args:
        text: Anything, typically decoded from the peer.
        limit: The most characters (= octets: all ASCII) to return; at least 13.
    """
    if len(text) <= limit and text.isascii() and text.isprintable():
        return text
    # Each character escapes to at least one, so only the first limit + 1 can matter.
    # Both steps run in C: non-ASCII first, then the ASCII controls (escapes hold none).
    escaped = text[: limit + 1].encode("ascii", "backslashreplace").decode("ascii").translate(_CONTROLS)
    if len(escaped) <= limit and len(text) <= limit:
        return escaped
    cut = escaped[: limit - len(_ELLIPSIS)]
    start = cut.rfind("\\", max(0, len(cut) - 9))  # the last escape, if it may be cut short
    if start != -1 and start + _ESCAPE_LENGTH.get(escaped[start + 1 : start + 2], 1) > len(cut):
        cut = cut[:start]
    return cut + _ELLIPSIS


#: The ASCII controls and DEL, as \\xNN like the rest (tab too: one form for all).
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
_ESCAPE_LENGTH = {"x": 4, "u": 6, "U": 10}
